# The optional CUDA module fusedrnn._cuda (csrc/cuda, csrc/bindings/cuda_module.cpp).
#
# FUSEDRNN_CUDA: AUTO (default) builds it when nvcc and cuBLAS are both found and otherwise says why
# and builds the CPU module alone; ON stops the build with what is missing; OFF never looks.
#
# cuBLAS: CUDA::cublas from the CUDA toolkit when the toolkit has it. Otherwise (CUDA 13 toolkits
# installed for compiling only ship without it) the `nvidia-cublas` wheel: its folder with include/
# and lib/libcublas.so.N is FUSEDRNN_CUBLAS_ROOT (CMake variable or environment variable), or else
# found through this build's Python as the `nvidia` namespace package (nvidia/cu13 for CUDA 13
# wheels, nvidia/cublas for the CUDA 12 ones). The wheel has no unversioned libcublas.so, so the
# versioned file is linked by path; at run time the module finds it through an rpath relative to
# site-packages, where the same wheel is installed beside fusedrnn (the [gpu] extra).
set(FUSEDRNN_CUDA AUTO CACHE STRING "Build the CUDA module fusedrnn._cuda: AUTO, ON or OFF")
set_property(CACHE FUSEDRNN_CUDA PROPERTY STRINGS AUTO ON OFF)
set(FUSEDRNN_CUDA_ARCHITECTURES "80-real;90-real;90-virtual" CACHE STRING
    "CUDA architectures of the CUDA module (default: sm_80 and sm_90 code, PTX for 90 to run on newer GPUs)")
set(FUSEDRNN_CUBLAS_ROOT "$ENV{FUSEDRNN_CUBLAS_ROOT}" CACHE PATH
    "Folder with include/cublas_v2.h and lib/libcublas.so.N (an unpacked nvidia-cublas wheel) when the toolkit has no cuBLAS")

# Stops with FATAL_ERROR under ON; under AUTO says why the CUDA module is skipped.
macro(fusedrnn_cuda_unavailable reason)
  if(FUSEDRNN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "fusedrnn: FUSEDRNN_CUDA=ON but ${reason}")
  endif()
  message(STATUS "fusedrnn: building without the CUDA module: ${reason}")
  return()
endmacro()

# Sets FUSEDRNN_CUBLAS_INCLUDE_DIR and FUSEDRNN_CUBLAS_LIBRARY from a wheel folder, if it has them.
function(fusedrnn_cublas_in root)
  file(GLOB _libs "${root}/lib/libcublas.so.*")
  list(FILTER _libs INCLUDE REGEX "/libcublas\\.so\\.[0-9]+$")
  if(EXISTS "${root}/include/cublas_v2.h" AND _libs)
    list(GET _libs 0 _lib)
    set(FUSEDRNN_CUBLAS_INCLUDE_DIR "${root}/include" PARENT_SCOPE)
    set(FUSEDRNN_CUBLAS_LIBRARY "${_lib}" PARENT_SCOPE)
  endif()
endfunction()

if(NOT FUSEDRNN_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "fusedrnn: FUSEDRNN_CUDA must be AUTO, ON or OFF, not '${FUSEDRNN_CUDA}'")
endif()
if(FUSEDRNN_CUDA STREQUAL "OFF")
  message(STATUS "fusedrnn: building without the CUDA module (FUSEDRNN_CUDA=OFF)")
  return()
endif()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  fusedrnn_cuda_unavailable("no CUDA compiler (nvcc) was found; put it on PATH or set CMAKE_CUDA_COMPILER")
endif()
find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND)
  fusedrnn_cuda_unavailable("nvcc was found but not its CUDA toolkit (FindCUDAToolkit)")
endif()

if(TARGET CUDA::cublas)
  set(_cublas CUDA::cublas)
  set(_cublas_rpath "${CUDAToolkit_LIBRARY_DIR}")
  set(_cublas_install_rpath "${CUDAToolkit_LIBRARY_DIR}")  # a toolkit stays where it is
  message(STATUS "fusedrnn: cuBLAS from the CUDA toolkit in ${CUDAToolkit_LIBRARY_DIR}")
else()
  if(FUSEDRNN_CUBLAS_ROOT)
    fusedrnn_cublas_in("${FUSEDRNN_CUBLAS_ROOT}")
  else()
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -c
        "import nvidia; print(';'.join(p + '/' + s for p in nvidia.__path__ for s in ('cu13', 'cublas')))"
      OUTPUT_VARIABLE _wheel_roots OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    foreach(_root IN LISTS _wheel_roots)
      if(NOT FUSEDRNN_CUBLAS_LIBRARY)
        fusedrnn_cublas_in("${_root}")
      endif()
    endforeach()
  endif()
  if(NOT FUSEDRNN_CUBLAS_LIBRARY)
    fusedrnn_cuda_unavailable("cuBLAS was found neither in the CUDA toolkit (${CUDAToolkit_LIBRARY_DIR}) nor as \
the nvidia-cublas wheel (FUSEDRNN_CUBLAS_ROOT='${FUSEDRNN_CUBLAS_ROOT}', or the package nvidia of ${Python_EXECUTABLE}): \
set FUSEDRNN_CUBLAS_ROOT to the wheel's folder with include/ and lib/")
  endif()
  add_library(fusedrnn_cublas INTERFACE)
  target_include_directories(fusedrnn_cublas INTERFACE "${FUSEDRNN_CUBLAS_INCLUDE_DIR}")
  target_link_libraries(fusedrnn_cublas INTERFACE "${FUSEDRNN_CUBLAS_LIBRARY}")
  set(_cublas fusedrnn_cublas)
  get_filename_component(_cublas_rpath "${FUSEDRNN_CUBLAS_LIBRARY}" DIRECTORY)
  set(_cublas_install_rpath "")  # a build environment's wheel may be gone: only the relative paths count
  message(STATUS "fusedrnn: cuBLAS from the nvidia-cublas wheel: ${FUSEDRNN_CUBLAS_LIBRARY}")
endif()

# Set before enable_language, which would otherwise test-compile for the compiler's default.
set(CMAKE_CUDA_ARCHITECTURES "${FUSEDRNN_CUDA_ARCHITECTURES}")
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)  # no libcudart at run time: only the driver and cuBLAS
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
message(STATUS "fusedrnn: CUDA module for ${CMAKE_CUDA_ARCHITECTURES} with nvcc ${CMAKE_CUDA_COMPILER_VERSION}")

pybind11_add_module(_cuda MODULE
  csrc/bindings/cuda_module.cpp
  csrc/cuda/arrays.cu
  csrc/cuda/gemm.cu
  csrc/cuda/persistent.cu
  csrc/cuda/sequence.cu
  csrc/cuda/steps.cu
  csrc/cuda/streams.cu)
target_include_directories(_cuda PRIVATE csrc/include csrc)
target_link_libraries(_cuda PRIVATE CUDA::cudart_static ${_cublas})
# --use_fast_math stays off: the kernels must agree with the CPU ones (activations.h is written
# to be exact enough without it). -lineinfo costs nothing at run time and helps the profilers.
target_compile_options(_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-O3 -Wall -Wextra>
  $<$<COMPILE_LANGUAGE:CUDA>:-O3 -lineinfo -Xcompiler=-Wall,-Wextra>)
# A generated header rather than a -D flag: the architecture list holds semicolons.
file(CONFIGURE OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/generated/fusedrnn_cuda_build.h"
     CONTENT "#define FUSEDRNN_CUDA_ARCHITECTURES \"${CMAKE_CUDA_ARCHITECTURES}\"\n")
target_include_directories(_cuda PRIVATE "${CMAKE_CURRENT_BINARY_DIR}/generated")
# Where the installed module finds cuBLAS: the wheel's layouts next to fusedrnn in site-packages
# (CUDA 13: nvidia/cu13/lib, CUDA 12: nvidia/cublas/lib), then a toolkit's library folder.
set_target_properties(_cuda PROPERTIES
  BUILD_RPATH "${_cublas_rpath}"
  INSTALL_RPATH "$ORIGIN/../nvidia/cu13/lib;$ORIGIN/../nvidia/cublas/lib;${_cublas_install_rpath}")
install(TARGETS _cuda LIBRARY DESTINATION fusedrnn)
