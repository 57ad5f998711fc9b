/* Built, never run: client/mixlb_sockets.h compiles as strict C99 with
 * -pedantic and the project's warnings as errors, as an app in C would
 * build it. The function makes the compiler look at every call. */
#include "client/mixlb_sockets.h"

int mixlb_sockets_c99_check(const char* path, int fd);

int mixlb_sockets_c99_check(const char* path, int fd) {
  char error[256];
  return mixlb_register_sockets(path, &fd, 1, "web", 1, error, sizeof error);
}
