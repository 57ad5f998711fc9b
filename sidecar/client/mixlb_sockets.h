#pragma once
/*
 * mixlb_sockets.h: hand an app's SO_REUSEPORT sockets to the mixlb sidecar,
 * so its reuseport selector can move new flows to this instance of the app
 * and let the old one drain (docs/operations.md, "restarting an app").
 *
 * One header, no library, plain C99 that also compiles as C++: an app in
 * any language with a C FFI can copy it, and mixlb-run uses it. Under a
 * strict -std=c99, define _POSIX_C_SOURCE 200809L (or _GNU_SOURCE) before
 * the first #include, as for any socket code.
 *
 * Use: create and bind the sockets (SO_REUSEPORT set before bind; TCP ones
 * listening), then
 *
 *     int fds[2] = {tcp_listener, udp_socket};
 *     char error[512];
 *     if (mixlb_register_sockets("/run/mixlb/mix1.handoff", fds, 2,
 *                                "web-v2", 1, error, sizeof error) != 0)
 *       fprintf(stderr, "%s\n", error);
 *
 * The sidecar keeps no copy of the sockets (the kernel's sockarray holds
 * them), so the app stays their only owner: when it closes them they are
 * gone, and their queues move to the app's next instance. Register all of
 * an instance's sockets in one call; a second call with the same label adds
 * to the same generation. `ready` 0 registers the generation without
 * giving it new flows, for `mixlbctl sockets switch` to do later.
 *
 * The protocol, one request per connection on a Unix stream socket:
 *
 *     app -> sidecar   {"label":"web-v2","ready":true}\n
 *                      one line of at most 4096 bytes, in one sendmsg with
 *                      SCM_RIGHTS carrying 1..64 socket fds. Both keys are
 *                      optional: no label = "pid:<pid>", no ready = true.
 *     sidecar -> app   {"ok":true,"registered":[{"service":"tcp 0.0.0.0:80",
 *                      "generation":2,"sockets":1,"active":true}]}\n
 *                      or {"ok":false,"error":"..."}\n, then it closes.
 *
 * The generation's pid is the connecting process's (SO_PEERCRED). Only
 * root and the sidecar's own user may connect. The sidecar closes its
 * copies of the fds before it replies.
 *
 * The calls block, at most MIXLB_SOCKETS_TIMEOUT_MS for each step (define
 * it before the #include to change it). strerror() names system errors, so
 * call them from one thread at a time, as a start-up step.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MIXLB_SOCKETS_MAX_FDS 64
#define MIXLB_SOCKETS_MAX_LINE 4096
/* What one SCM_RIGHTS message may carry at all (the kernel's SCM_MAX_FD). */
#define MIXLB_SOCKETS_WIRE_MAX_FDS 253
#ifndef MIXLB_SOCKETS_TIMEOUT_MS
#define MIXLB_SOCKETS_TIMEOUT_MS 10000
#endif

/* Names starting mixlb_inner_ are the header's helpers, not its API (a
 * double underscore would be reserved in C++). */

#if defined(__GNUC__) || defined(__clang__)
#define MIXLB_INNER_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MIXLB_INNER_PRINTF(f, a)
#endif

/* Writes the message into error (when there is room for one) and returns -1. */
static inline int mixlb_inner_fail(char* error, size_t error_len, const char* format, ...)
    MIXLB_INNER_PRINTF(3, 4);
static inline int mixlb_inner_fail(char* error, size_t error_len, const char* format, ...) {
  va_list args;
  if (error != NULL && error_len > 0) {
    va_start(args, format);
    vsnprintf(error, error_len, format, args);
    va_end(args);
  }
  return -1;
}

/* Appends `text` as a JSON string (quotes included) at out[*at], leaving
 * room for the terminating NUL. Bytes from 0x80 up pass as they are (the
 * sidecar checks that they are UTF-8). Returns -1 when it does not fit. */
static inline int mixlb_inner_json_string(char* out, size_t cap, size_t* at, const char* text) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char* p = (const unsigned char*)text;
  char escaped[7];
  size_t n;
  if (*at + 1 >= cap) return -1;
  out[(*at)++] = '"';
  for (; *p != 0; ++p) {
    n = 2;
    escaped[0] = '\\';
    if (*p == '"' || *p == '\\') {
      escaped[1] = (char)*p;
    } else if (*p == '\n') {
      escaped[1] = 'n';
    } else if (*p == '\t') {
      escaped[1] = 't';
    } else if (*p < 0x20 || *p == 0x7f) {
      memcpy(escaped, "\\u00", 4);
      escaped[4] = hex[*p >> 4];
      escaped[5] = hex[*p & 0xf];
      n = 6;
    } else {
      escaped[0] = (char)*p;
      n = 1;
    }
    if (*at + n + 1 >= cap) return -1;
    memcpy(out + *at, escaped, n);
    *at += n;
  }
  if (*at + 1 >= cap) return -1;
  out[(*at)++] = '"';
  out[*at] = 0;
  return 0;
}

static inline const char* mixlb_inner_space(const char* p) {
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') ++p;
  return p;
}

/* Appends code point `c` as UTF-8 to out[*at] while there is room. */
static inline void mixlb_inner_put_utf8(char* out, size_t cap, size_t* at, unsigned long c) {
  /* How many bytes, and the lead byte's marker. */
  const size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  static const unsigned char lead[5] = {0, 0x00, 0xc0, 0xe0, 0xf0};
  size_t i;
  if (out == NULL || *at + n >= cap) return; /* a character is not cut in two */
  out[*at] = (char)(lead[n] | (c >> (6 * (n - 1))));
  for (i = 1; i < n; ++i) out[*at + i] = (char)(0x80 | ((c >> (6 * (n - 1 - i))) & 0x3f));
  *at += n;
}

static inline int mixlb_inner_hex4(const char* p, unsigned long* value) {
  int i;
  *value = 0;
  for (i = 0; i < 4; ++i) {
    const char c = p[i];
    *value <<= 4;
    if (c >= '0' && c <= '9')
      *value |= (unsigned long)(c - '0');
    else if (c >= 'a' && c <= 'f')
      *value |= (unsigned long)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      *value |= (unsigned long)(c - 'A' + 10);
    else
      return -1;
  }
  return 0;
}

/* Decodes the JSON string at p (its opening quote) into out, cut to fit
 * cap bytes with its NUL (out may be NULL to skip the string). Returns the
 * position after the closing quote, or NULL when it is not a string. */
static inline const char* mixlb_inner_read_string(const char* p, char* out, size_t cap) {
  size_t at = 0;
  if (*p++ != '"') return NULL;
  for (;;) {
    unsigned long c = (unsigned char)*p++;
    if (c == 0) return NULL;
    if (c == '"') break;
    if (c == '\\') {
      const char e = *p++;
      switch (e) {
        case 'n':
          c = '\n';
          break;
        case 't':
          c = '\t';
          break;
        case 'r':
          c = '\r';
          break;
        case 'b':
          c = '\b';
          break;
        case 'f':
          c = '\f';
          break;
        case '"':
        case '\\':
        case '/':
          c = (unsigned char)e;
          break;
        case 'u': {
          unsigned long low;
          if (mixlb_inner_hex4(p, &c) != 0) return NULL;
          p += 4;
          if (c >= 0xd800 && c < 0xdc00 && p[0] == '\\' && p[1] == 'u' &&
              mixlb_inner_hex4(p + 2, &low) == 0 && low >= 0xdc00 && low < 0xe000) {
            c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
            p += 6;
          } else if (c >= 0xd800 && c < 0xe000) {
            c = 0xfffd; /* a lone surrogate */
          }
          break;
        }
        default:
          return NULL;
      }
      mixlb_inner_put_utf8(out, cap, &at, c);
    } else if (out != NULL && at + 1 < cap) {
      out[at++] = (char)c;
    }
  }
  if (out != NULL && cap > 0) out[at] = 0;
  return p;
}

/* Skips one JSON value; returns the position after it, or NULL. */
static inline const char* mixlb_inner_skip_value(const char* p) {
  int depth = 0;
  do {
    p = mixlb_inner_space(p);
    if (*p == '"') {
      p = mixlb_inner_read_string(p, NULL, 0);
      if (p == NULL) return NULL;
    } else if (*p == '{' || *p == '[') {
      ++depth;
      ++p;
    } else if (*p == '}' || *p == ']') {
      if (depth == 0) return NULL;
      --depth;
      ++p;
    } else if (*p == ',' || *p == ':') {
      if (depth == 0) return NULL;
      ++p;
    } else if (*p != 0) {
      while (*p != 0 && strchr(",:{}[]\" \t\r\n", *p) == NULL) ++p;
    } else {
      return NULL;
    }
  } while (depth > 0);
  return p;
}

/* Reads a reply line: *ok is 1 or 0, and the error text (when there is
 * one) goes into error. Returns -1 when the line is not a reply. */
static inline int mixlb_inner_parse_reply(const char* line, int* ok, char* error,
                                          size_t error_len) {
  const char* p = mixlb_inner_space(line);
  *ok = -1;
  if (*p++ != '{') return -1;
  p = mixlb_inner_space(p);
  if (*p == '}') return -1;
  for (;;) {
    char key[8];
    p = mixlb_inner_read_string(p, key, sizeof key);
    if (p == NULL) return -1;
    p = mixlb_inner_space(p);
    if (*p++ != ':') return -1;
    p = mixlb_inner_space(p);
    if (strcmp(key, "ok") == 0 && strncmp(p, "true", 4) == 0) {
      *ok = 1;
      p += 4;
    } else if (strcmp(key, "ok") == 0 && strncmp(p, "false", 5) == 0) {
      *ok = 0;
      p += 5;
    } else if (strcmp(key, "error") == 0 && *p == '"' && error != NULL) {
      p = mixlb_inner_read_string(p, error, error_len);
    } else {
      p = mixlb_inner_skip_value(p);
    }
    if (p == NULL) return -1;
    p = mixlb_inner_space(p);
    if (*p == '}') break;
    if (*p++ != ',') return -1;
    p = mixlb_inner_space(p);
  }
  return *ok < 0 ? -1 : 0;
}

/*
 * The wire step alone, for tools that build their own request: connects to
 * `path`, sends `line` (len bytes, its newline included) in one sendmsg
 * with fds[0..nfds) as SCM_RIGHTS (nfds 0..253: the sidecar's own limits
 * are its to enforce), and reads the reply line into `reply` (without its
 * newline). Returns 0 when a reply line came, whatever it says; -1 with a
 * message in `error` when none did.
 */
static inline int mixlb_sockets_exchange(const char* path, const char* line, size_t len,
                                         const int* fds, size_t nfds, char* reply, size_t reply_len,
                                         char* error, size_t error_len) {
  struct sockaddr_un address;
  struct timeval timeout;
  struct msghdr message;
  struct iovec data;
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * MIXLB_SOCKETS_WIRE_MAX_FDS)];
  } control;
  size_t sent = 0, got = 0;
  int fd, send_error = 0;

  if (path == NULL || *path == 0 || strlen(path) >= sizeof address.sun_path) {
    return mixlb_inner_fail(error, error_len,
                            "the socket path '%s' is empty or longer than %zu bytes",
                            path != NULL ? path : "", sizeof address.sun_path - 1);
  }
  if (nfds > MIXLB_SOCKETS_WIRE_MAX_FDS) {
    return mixlb_inner_fail(error, error_len, "%zu fds: one message carries at most %d", nfds,
                            MIXLB_SOCKETS_WIRE_MAX_FDS);
  }
  if (reply == NULL || reply_len < 2)
    return mixlb_inner_fail(error, error_len, "no room for the reply");
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  memcpy(address.sun_path, path, strlen(path));

  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return mixlb_inner_fail(error, error_len, "cannot create a Unix socket: %s", strerror(errno));
  /* A Unix socket's connect waits by the send timeout when the backlog is full. */
  timeout.tv_sec = MIXLB_SOCKETS_TIMEOUT_MS / 1000;
  timeout.tv_usec = (MIXLB_SOCKETS_TIMEOUT_MS % 1000) * 1000;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) {
    const int e = errno;
    close(fd);
    return mixlb_inner_fail(error, error_len, "cannot set a timeout on the socket: %s",
                            strerror(e));
  }
  if (connect(fd, (const struct sockaddr*)&address, sizeof address) != 0) {
    const int e = errno;
    close(fd);
    return mixlb_inner_fail(error, error_len, "cannot connect to %s: %s%s", path, strerror(e),
                            e == ENOENT || e == ECONNREFUSED
                                ? " (is the mixlb sidecar running with its handoff socket?)"
                                : "");
  }

  memset(&message, 0, sizeof message);
  memset(&control, 0, sizeof control);
  /* sendmsg only reads the line; a copy of the pointer, not a cast, drops
   * its const without a warning. */
  memcpy(&data.iov_base, &line, sizeof line);
  data.iov_len = len;
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  if (nfds > 0) {
    struct cmsghdr* header;
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(header), fds, sizeof(int) * nfds);
  }
  /* The fds go with the first bytes; whatever a short send left follows
   * without them. */
  while (sent < len) {
    const ssize_t n = sent == 0 ? sendmsg(fd, &message, MSG_NOSIGNAL)
                                : send(fd, line + sent, len - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      send_error = errno;
      break;
    }
    sent += (size_t)n;
  }

  /* Read even after a failed send: a sidecar that refused the connection
   * (a uid it does not allow, say) has written why before closing. */
  while (got + 1 < reply_len) {
    const ssize_t n = recv(fd, reply + got, reply_len - 1 - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : 0;
      reply[got] = 0;
      close(fd);
      if (send_error != 0 && memchr(reply, '\n', got) == NULL) {
        return mixlb_inner_fail(error, error_len, "cannot send the request to %s: %s", path,
                                strerror(send_error));
      }
      if (e == EAGAIN || e == EWOULDBLOCK) {
        return mixlb_inner_fail(error, error_len, "no reply from %s within %d ms", path,
                                MIXLB_SOCKETS_TIMEOUT_MS);
      }
      if (e != 0)
        return mixlb_inner_fail(error, error_len, "cannot read the reply from %s: %s", path,
                                strerror(e));
      return mixlb_inner_fail(error, error_len, "%s closed the connection without a reply", path);
    }
    got += (size_t)n;
    if (memchr(reply + got - (size_t)n, '\n', (size_t)n) != NULL) break;
  }
  close(fd);
  reply[got] = 0;
  {
    char* newline = (char*)memchr(reply, '\n', got);
    if (newline == NULL) {
      return mixlb_inner_fail(error, error_len, "the reply from %s is longer than %zu bytes", path,
                              reply_len - 1);
    }
    *newline = 0;
  }
  return 0;
}

/*
 * Registers fds[0..nfds) (1 to 64 bound SO_REUSEPORT sockets) with the
 * sidecar listening on `path`, under `label` (NULL or "": the sidecar names
 * the generation "pid:<pid>"); `ready` nonzero gives it new flows at once.
 * Returns 0 when the sidecar took them all; -1 otherwise, with one line in
 * `error` that says why (the sidecar's own reason when it refused). The
 * fds stay open and the app's: close them only when the app is done.
 */
static inline int mixlb_register_sockets(const char* path, const int* fds, size_t nfds,
                                         const char* label, int ready, char* error,
                                         size_t error_len) {
  char line[MIXLB_SOCKETS_MAX_LINE + 2];
  char reply[16384];
  size_t at = 0, prefix;
  int ok;

  if (error != NULL && error_len > 0) error[0] = 0;
  if (fds == NULL || nfds == 0 || nfds > MIXLB_SOCKETS_MAX_FDS) {
    return mixlb_inner_fail(error, error_len, "%zu sockets: register 1 to %d at a time",
                            fds == NULL ? 0 : nfds, MIXLB_SOCKETS_MAX_FDS);
  }
  line[at++] = '{';
  if (label != NULL && *label != 0) {
    memcpy(line + at, "\"label\":", 8);
    at += 8;
    if (mixlb_inner_json_string(line, sizeof line - 1, &at, label) != 0) {
      return mixlb_inner_fail(error, error_len,
                              "the label is too long: the request line has at most %d bytes",
                              MIXLB_SOCKETS_MAX_LINE);
    }
    line[at++] = ',';
  }
  at += (size_t)snprintf(line + at, sizeof line - at, "\"ready\":%s}\n", ready ? "true" : "false");
  if (at > MIXLB_SOCKETS_MAX_LINE + 1) {
    return mixlb_inner_fail(error, error_len,
                            "the label is too long: the request line has at most %d bytes",
                            MIXLB_SOCKETS_MAX_LINE);
  }

  if (mixlb_sockets_exchange(path, line, at, fds, nfds, reply, sizeof reply, error, error_len) != 0)
    return -1;
  prefix = error != NULL && error_len > 0
               ? (size_t)snprintf(error, error_len, "the sidecar refused: ")
               : 0;
  if (prefix >= error_len) prefix = error_len > 0 ? error_len - 1 : 0;
  if (mixlb_inner_parse_reply(reply, &ok, error != NULL ? error + prefix : NULL,
                              error_len - prefix) != 0) {
    return mixlb_inner_fail(error, error_len, "%s sent a reply that is not mixlb's: %.200s", path,
                            reply);
  }
  if (ok) {
    if (error != NULL && error_len > 0) error[0] = 0;
    return 0;
  }
  return -1;
}
