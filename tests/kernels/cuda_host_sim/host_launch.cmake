# A CUDA source as C++ for the host stand-in (cuda_runtime.h here): every launch
# `kernel<<<config>>>(args)` becomes `sim::launch([&](auto&&... a) { kernel(a...); })(sim::config(config), args)`
# (the lambda lets a kernel template deduce its arguments as the launch would), and a kernel's
# dynamic shared memory is the stand-in block's. Run as cmake -DIN=... -DOUT=... -P host_launch.cmake.
file(READ "${IN}" source)
string(REGEX REPLACE "([A-Za-z_][A-Za-z_0-9]*(<[^<>;()]*>)?)<<<"
       "sim::launch([&](auto&&... sim_args) { \\1(sim_args...); })(sim::config(" source "${source}")
string(REPLACE ">>>(" "), " source "${source}")
string(REPLACE "extern __shared__ __align__(128) unsigned char smem[];" "unsigned char* smem = ::sim::block->smem;"
       source "${source}")
if(source MATCHES "<<<" OR source MATCHES ">>>" OR source MATCHES "extern __shared__")
  message(FATAL_ERROR "host_launch.cmake: ${IN} has a launch or shared array this script does not know")
endif()
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by host_launch.cmake.\n${source}")
file(RENAME "${OUT}.tmp" "${OUT}")
