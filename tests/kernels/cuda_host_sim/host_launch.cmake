# flash_attention.cu as C++ for the host stand-in (cuda_runtime.h here): the kernels' launches
# `k<HS><<<grid, threads, smem>>>(args)` become sim::launch(k<HS>, grid, threads, smem, args) and the
# dynamic shared memory the stand-in's block's. Run as cmake -DIN=... -DOUT=... -P host_launch.cmake.
file(READ "${IN}" source)
string(REGEX REPLACE "([A-Za-z_]+<HS>)<<<([A-Za-z_]+), ([A-Za-z_]+), ([A-Za-z_]+<HS>\\(\\))>>>\\("
       "sim::launch(\\1, \\2, \\3, \\4, " source "${source}")
string(REPLACE "extern __shared__ __align__(128) unsigned char smem[];" "unsigned char* smem = ::sim::block->smem;"
       source "${source}")
if(source MATCHES "<<<" OR source MATCHES "extern __shared__")
  message(FATAL_ERROR "host_launch.cmake: ${IN} has a launch or shared array this script does not know")
endif()
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by host_launch.cmake.\n${source}")
file(RENAME "${OUT}.tmp" "${OUT}")
