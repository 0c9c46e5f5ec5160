# A tiny guest for vmabak tests (real mode, SeaBIOS boots it from the
# first virtio disk). Forever: increment the 32-bit counter at 0x7e00 in RAM,
# copy it to a sector buffer and write that sector to LBA 2048 (disk offset
# 1 MiB) with INT 13h AH=43h. So RAM and disk each hold a counter, and a
# backup whose RAM and disks belong to one instant has RAM - disk in {0, 1}.
#
# Rebuild: as --32 -o b.o boot_counter.S && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o b.bin b.o
# (tests/boot_sector_test.ts checks the bytes in boot_sector.ts against it).
    .code16
    .text
    .globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7c00, %sp
    sti
    movb %dl, drive
1:
    incl 0x7e00
    movl 0x7e00, %eax
    movl %eax, 0x8000
    movw $dap, %si
    movw $0x4300, %ax
    movb drive, %dl
    int $0x13
    jmp 1b
    .balign 4
dap:
    .byte 16, 0
    .word 1
    .word 0x8000, 0
    .long 2048, 0
drive:
    .byte 0
    .org 510
    .byte 0x55, 0xaa
