// LD_PRELOAD shim for the crash-safety tests: fsync() of the file or directory whose last path
// component is $GPTRAIN_TEST_FAIL_FSYNC_OF fails with EIO, as a dying disk or a full NFS server
// would make it; every other fsync is the real one.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" int fsync(int fd) {
  using Fsync = int (*)(int);
  static const Fsync real = reinterpret_cast<Fsync>(dlsym(RTLD_NEXT, "fsync"));
  if (const char* name = std::getenv("GPTRAIN_TEST_FAIL_FSYNC_OF")) {
    char link[64], target[PATH_MAX];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = ::readlink(link, target, sizeof target - 1);
    if (n > 0) {
      target[n] = '\0';
      const char* slash = std::strrchr(target, '/');
      if (std::strcmp(slash ? slash + 1 : target, name) == 0) {
        errno = EIO;
        return -1;
      }
    }
  }
  return real(fd);
}
