#!/bin/sh
# `deno task` runs anything it finds in node_modules/.bin as a JavaScript
# file, and that breaks on the `deno` binary from npm. Tasks call Deno through
# this script instead, where the shell resolves `deno` the ordinary way.
exec deno "$@"
