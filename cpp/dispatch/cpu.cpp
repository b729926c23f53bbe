// cpu.cpp: which instruction-set levels this CPU *and* its operating system
// support (libgcc's __builtin_cpu_supports reads cpuid and checks with xgetbv
// that the OS saves the AVX / AVX-512 registers). flatext/_native.py loads this
// tiny library with ctypes before choosing the extension variant to import:
// loading a variant the CPU cannot run would die with SIGILL on first use.
extern "C" {

/// Highest x86-64 micro-architecture level supported: 4 (AVX-512 F/BW/CD/DQ/VL),
/// 3 (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE), 2, 1; 0 on other architectures.
__attribute__((visibility("default"))) int flatext_x86_level() {
#if defined(__x86_64__) && !defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 12
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    if (__builtin_cpu_supports("x86-64-v2")) return 2;
    return 1;
#elif defined(__x86_64__) && defined(__GNUC__)
    // older GCC: no level names; test the features that decide our variants
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("bmi2"))
        return 4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) return 3;
    return 1;
#else
    return 0;
#endif
}
}
