# Per-ISA compile flags. Each ISA's code lives in files named *_avx2.cc / *_avx512.cc; the flags apply
# to those files only, and the dispatcher picks a path once at start-up from CPUID.
include(CheckCXXCompilerFlag)
# -ffp-contract=off: GCC's C++ default (fast) would fuse a written multiply and add into an FMA, so
# kernels meant to round like the scalar reference would not; FMAs are written explicitly.
set(LOWBIT_AVX2_FLAGS -mavx2 -mfma -mf16c -ffp-contract=off)
set(LOWBIT_AVX512_FLAGS -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -ffp-contract=off)
check_cxx_compiler_flag("-mavx512vnni" LOWBIT_HAVE_AVX512_FLAGS)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12's own AVX-512 headers build results from _mm512_undefined_*(), which -Wmaybe-uninitialized
  # reports inside the headers (GCC bug 105593). Only the AVX-512 translation units get this.
  list(APPEND LOWBIT_AVX512_FLAGS -Wno-maybe-uninitialized)
endif()
set(LOWBIT_ISA_SUMMARY "reference, avx2")
if(LOWBIT_HAVE_AVX512_FLAGS)
  string(APPEND LOWBIT_ISA_SUMMARY ", avx512(+vnni)")
endif()

function(lowbit_isa_sources)
  foreach(f IN LISTS ARGN)
    if(f MATCHES "_avx512\\.cc$")
      set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${LOWBIT_AVX512_FLAGS}")
    elseif(f MATCHES "_avx2\\.cc$")
      set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${LOWBIT_AVX2_FLAGS}")
    endif()
  endforeach()
endfunction()
