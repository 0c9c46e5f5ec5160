/** The program's version, printed by `vmabak --version` and stored in configs. */
export const VERSION = "0.1.0";
