# Development shell: the build inputs plus the tools the test suite and
# benchmarks use.
{ mkShell, vigil, clang-tools, valgrind, gdb, qemu, vde2, busybox, python3 }:

mkShell {
  inputsFrom = [ vigil ];
  packages = [ clang-tools valgrind gdb qemu vde2 busybox python3 ];
}
