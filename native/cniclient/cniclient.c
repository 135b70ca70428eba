/*
 * flax cniclient: the executable a runtime runs as /opt/cni/bin/<plugin>.
 * One static binary for every plugin, dispatching on basename(argv[0]): it
 * forwards the call to the resident flax CNI server (plugins/pkg/cniserver)
 * and prints its answer byte for byte, or — when no server answers the
 * connect — executes the standalone plugin `<own dir>/<name>.standalone`
 * (or the package's multi-call `<own dir>/flax` as <name>) with the same
 * environment and the untouched stdin.
 *
 *  - socket: $FLAX_CNI_SOCKET, default /run/flax/cni.sock; an empty
 *    FLAX_CNI_SOCKET means "never use a server".
 *  - sent: the name, the whole environment, stdin, and as SCM_RIGHTS the
 *    caller's own network namespace and CNI_NETNS opened here (so the server
 *    acts in the caller's namespaces whatever its own mount or PID
 *    namespace); an open failure is sent as its errno, and the plugin
 *    answers as it would have when it failed to open the path itself.
 *  - once connect() succeeded the standalone plugin runs only when the
 *    server answers RUN_STANDALONE (it did nothing: the caller's mount
 *    namespace shows the call's paths otherwise than the server's, see
 *    plugins/pkg/cniserver/view.ts), or when the server dies before a
 *    complete reply (kill -9, a crash, a drain that ran out of time) and
 *    the verb is safe to repeat: DEL, CHECK, STATUS, GC, VERSION (and any
 *    verb that is not ADD: a plugin answers those with an error and does
 *    nothing). Either way it runs here with the stdin already read. An ADD
 *    the server may have started is never run again here: it answers CNI
 *    error code 11 "try again later", in the request's cniVersion, so the
 *    runtime retries (or tears down and retries) the sandbox instead of
 *    reporting a plugin fault.
 *  - also sent: the caller's root directory (O_PATH), so the server can
 *    compare its view of the files with the caller's.
 *  - auto mode (issue 24; `flax install --server auto` writes "auto" into
 *    /etc/flax/cni-server, $FLAX_CNI_SERVER overrides it): when no server
 *    answers (no socket, or a stale one) and the caller is root, the client
 *    starts `flaxd --no-overlay --cni-socket <socket> --idle-exit 10m
 *    --gc-interval 0` from beside its real path, detached in its own session
 *    (stdin /dev/null, stdout and stderr appended to
 *    /var/log/flax/cni-server.log), waits for it to answer (at most
 *    AUTOSTART_WAIT_MS, or $FLAX_CNI_SERVER_WAIT_MS; woken when flaxd says its
 *    socket listens: a pipe it inherits as fd 3, named by FLAX_CNI_READY_FD,
 *    which it writes and closes — not inotify, whose close() waits ~10–25 ms
 *    for the kernel to reap the watch), then sends the call; if it does not come up, the
 *    standalone plugin runs as without a server. `<socket>.autostart` (flock)
 *    makes concurrent first calls start one server: the others wait for that
 *    start and then connect; a server that holds `<socket>.lock` (starting,
 *    or stopping) is waited for, never doubled; a start that failed is not
 *    tried again for AUTOSTART_RETRY_S (the time is in the autostart file).
 *    A VERSION call of a flax plugin does not wait for that start: the client
 *    answers it itself and leaves the start to a detached child of its own,
 *    which does what a waiting call would (lock, start, wait, record a
 *    failure) and then exits. Runtimes probe VERSION before the ADD (podman:
 *    ~200 ms before), so the ADD finds the server up.
 *  - VERSION of a flax plugin when no server answers (any mode; not with an
 *    empty FLAX_CNI_SOCKET): answered here, skel's answer byte for byte — the
 *    same for every flax plugin, depending on nothing of the call — instead
 *    of starting a standalone plugin to print it (podman probes each plugin
 *    of the network before every ADD and DEL).
 * Wire format: native/addon/cniserver.cc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_SOCKET "/run/flax/cni.sock"
/* the server's exit code for "not served here: run the standalone plugin" (never a process's) */
#define RUN_STANDALONE (-1000)

struct req_hdr {
  char magic[8];
  uint32_t name_len;
  uint32_t env_len;
  uint64_t stdin_len;
  int32_t netns_errno;
  uint32_t nfds;
  uint32_t flags;
  uint32_t reserved;
};
struct rep_hdr {
  char magic[8];
  int32_t exit_code;
  uint32_t reserved;
  uint64_t stdout_len;
  uint64_t stderr_len;
};

/* auto mode: how long a first call waits for the server it started, and how long a failed start is not retried */
#define AUTOSTART_WAIT_MS 5000
#define AUTOSTART_RETRY_S 30
#define CONFIG_DIR "/etc/flax"
#define LOG_DIR "/var/log/flax"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const versions[] = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

/* the plugins a client can stand for (scripts/cni-worker-bundle.mjs CNI_CLIENT_NAMES; a unit test checks);
   a VERSION of another name goes where any other call goes */
static const char *const plugins[] = {"bridge", "host-local", "loopback", "portmap", "flannel"};

static char *in_buf;
static size_t in_len;

/* The config's cniVersion when it is one we support (as skel answers errors), else 1.1.0. */
static const char *error_version(void) {
  const char *key = "\"cniVersion\"";
  const char *p = in_buf ? memmem(in_buf, in_len, key, strlen(key)) : NULL;
  if (p) {
    const char *end = in_buf + in_len;
    p += strlen(key);
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (p < end && *p == ':') p++;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (p < end && *p == '"') {
      p++;
      for (size_t i = 0; i < COUNT(versions); i++) {
        size_t n = strlen(versions[i]);
        if ((size_t)(end - p) > n && memcmp(p, versions[i], n) == 0 && p[n] == '"') return versions[i];
      }
    }
  }
  return "1.1.0";
}

/* A CNI error on stdout, rendered as skel renders it (4-space JSON). */
static void cni_error(int code, const char *msg) {
  printf("{\n    \"cniVersion\": \"%s\",\n    \"code\": %d,\n    \"msg\": \"", error_version(), code);
  for (const char *p = msg; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if ((unsigned char)*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  printf("\"\n}\n");
  fflush(stdout);
  exit(1);
}

static void cni_fail(const char *msg) { cni_error(999, msg); }

static int write_full(int fd, const void *buf, size_t len) {
  const char *p = buf;
  struct stat st;
  int sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  while (len > 0) {
    ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* All of stdin; nothing when it is a terminal or closed (as skel reads it). */
static void read_stdin(void) {
  struct stat st;
  if (fstat(0, &st) != 0 || S_ISCHR(st.st_mode)) return;
  size_t cap = 65536;
  in_buf = malloc(cap);
  if (!in_buf) cni_fail("flax cniclient: out of memory");
  for (;;) {
    if (in_len == cap) {
      cap *= 2;
      char *b = realloc(in_buf, cap);
      if (!b) cni_fail("flax cniclient: out of memory reading stdin");
      in_buf = b;
    }
    ssize_t n = read(0, in_buf + in_len, cap - in_len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in_len += (size_t)n;
  }
}

/*
 * What <dir>/<name>.standalone (scripts/build.mjs's launcher) would exec,
 * without its shell and stat (~5 ms a call): when the launcher names the
 * node that built <name>.blob (its "dev:ino:size:mtime") and the first node
 * in PATH is that one, exec node with the snapshot here. Returns when
 * anything differs (the caller then runs the launcher itself).
 */
static void exec_snapshot(const char *dir, const char *name, char **argv) {
  char file[PATH_MAX + 64], head[4096], blob[PATH_MAX + 64], js[PATH_MAX + 64], node[PATH_MAX + 16];
  snprintf(file, sizeof(file), "%s/%s.standalone", dir, name);
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, head, sizeof(head) - 1);
  close(fd);
  if (n <= 0) return;
  head[n] = '\0';
  if (!strstr(head, "# flax-executable launcher")) return;
  const char *id = strstr(head, "\" = \"");
  unsigned long long dev, ino, size, mtime;
  if (!id || sscanf(id + 5, "%llu:%llu:%llu:%llu\"", &dev, &ino, &size, &mtime) != 4) return;
  snprintf(blob, sizeof(blob), "%s/%s.blob", dir, name);
  snprintf(js, sizeof(js), "%s/%s.js", dir, name);
  if (access(blob, R_OK) != 0 || access(js, R_OK) != 0) return;
  const char *path = getenv("PATH");
  if (!path) return;
  for (const char *p = path; *p;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0 || p[0] != '/') return; /* sh would look in the working directory: let it */
    if (len + 6 < sizeof(node)) {
      memcpy(node, p, len);
      memcpy(node + len, "/node", 6);
      struct stat st;
      if (access(node, X_OK) == 0 && stat(node, &st) == 0) {
        if ((unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino || (unsigned long long)st.st_size != size ||
            (unsigned long long)st.st_mtime != mtime) return;
        int argc = 0;
        while (argv[argc]) argc++;
        char **nv = calloc((size_t)argc + 4, sizeof(char *));
        if (!nv) return;
        nv[0] = "node";
        nv[1] = "--snapshot-blob";
        nv[2] = blob;
        nv[3] = js;
        for (int i = 1; i < argc; i++) nv[3 + i] = argv[i];
        execv(node, nv);
        free(nv);
        return;
      }
    }
    if (!end) break;
    p = end + 1;
  }
}

/*
 * The standalone plugin beside this binary's real path: <name>.standalone
 * (dist/bin: the Node launcher), else the multi-call `flax` of the package
 * (npm run package, flax install), run with argv[0] = <name>: it dispatches
 * on that name.
 */
static void run_standalone(const char *name, char **argv) {
  char self[PATH_MAX], target[PATH_MAX + 64], msg[2 * PATH_MAX + 256];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) cni_fail("flax cniclient: cannot read /proc/self/exe");
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  *slash = '\0';
  exec_snapshot(self, name, argv);
  snprintf(target, sizeof(target), "%s/%s.standalone", self, name);
  argv[0] = target;
  execv(target, argv);
  int err = errno;
  if (err == ENOENT) {
    char multi[PATH_MAX + 16];
    snprintf(multi, sizeof(multi), "%s/flax", self);
    argv[0] = (char *)name;
    execv(multi, argv);
    snprintf(msg, sizeof(msg), "flax: no CNI server answered and neither %s nor %s could be run: %s", target, multi, strerror(errno));
    cni_fail(msg);
  }
  snprintf(msg, sizeof(msg), "flax: no CNI server answered and the standalone plugin %s could not be run: %s", target, strerror(err));
  cni_fail(msg);
}

/* stdin for the standalone plugin: what was read from the caller, from a memfd at offset 0. */
static void replay_stdin(void) {
  if (!in_buf) return;
  int m = memfd_create("flax-cni-stdin", MFD_CLOEXEC);
  if (m < 0 || write_full(m, in_buf, in_len) != 0 || lseek(m, 0, SEEK_SET) != 0 || dup2(m, 0) != 0) {
    cni_fail("flax cniclient: cannot hand stdin to the standalone plugin");
  }
  close(m);
}

/*
 * The server died (or closed the connection) before a complete reply. An
 * ADD may have been partly carried out by it: running it again here could
 * race what the server left, so the runtime is told to try again later
 * (code 11); every other verb is safe to repeat and runs standalone.
 */
static void server_gone(int fd, const char *name, char **argv, const char *when) {
  close(fd);
  const char *verb = getenv("CNI_COMMAND");
  if (verb && strcmp(verb, "ADD") == 0) {
    char msg[256];
    snprintf(msg, sizeof(msg), "flax CNI server closed the connection %s (it stopped or died); the ADD was not run again: try again later", when);
    cni_error(11, msg);
  }
  replay_stdin();
  run_standalone(name, argv);
}

/* A connected socket to the server at a, or -1 (errno from connect). */
static int try_connect(const struct sockaddr_un *a) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0) return fd;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* "auto" when the server is to be started on demand: $FLAX_CNI_SERVER, else the first word of <config dir>/cni-server. */
static int auto_mode(void) {
  const char *env = getenv("FLAX_CNI_SERVER");
  if (env) return strcmp(env, "auto") == 0;
  const char *dir = getenv("FLAX_CONFIG_DIR");
  char file[PATH_MAX], buf[16] = {0};
  snprintf(file, sizeof(file), "%s/cni-server", dir && *dir ? dir : CONFIG_DIR);
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  return n >= 4 && memcmp(buf, "auto", 4) == 0 && (n == 4 || buf[4] == '\n' || buf[4] == ' ');
}

/* True when a server process holds <sock>.lock (flaxd's flock while it runs). */
static int server_lock_held(const char *sock) {
  char p[PATH_MAX];
  snprintf(p, sizeof(p), "%s.lock", sock);
  int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return 0;
  int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return held;
}

static void mkdir_parent(const char *file) {
  char d[PATH_MAX];
  snprintf(d, sizeof(d), "%s", file);
  char *slash = strrchr(d, '/');
  if (!slash || slash == d) return;
  *slash = '\0';
  mkdir(d, 0755);
}

/*
 * In a forked child: a session of its own, stdin /dev/null, stdout and
 * stderr to `out` (/dev/null when -1), and no other descriptor — nothing of
 * the caller's: the runtime reads the plugin's pipes until every copy is
 * closed — but `keep` (when >= 0), which becomes fd 3, inherited by an exec.
 */
static void detach(int out, int keep) {
  setsid();
  int k = keep >= 0 ? fcntl(keep, F_DUPFD, 10) : -1; /* out of the way of 0-3 first (F_DUPFD: no close-on-exec) */
  if (keep >= 0 && k < 0) _exit(127);
  int in = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (out < 0) out = in;
  if (in < 0 || dup2(in, 0) != 0 || dup2(out, 1) != 1 || dup2(out, 2) != 2) _exit(127);
  if (k >= 0 && dup2(k, 3) != 3) _exit(127);
  unsigned first = k >= 0 ? 4U : 3U;
  if (syscall(SYS_close_range, first, ~0U, 0U) != 0) {
    for (int fd = (int)first; fd < 65536; fd++) close(fd);
  }
}

/*
 * Starts flaxd --no-overlay on sock, detached: its own session, cwd /,
 * stdin /dev/null, stdout/stderr appended to the log, an environment of PATH
 * and FLAX_CNI_READY_FD=3 only, and no other descriptor but that fd 3: the
 * write end of a pipe whose read end is *ready (close-on-exec here), which
 * flaxd writes and closes once its socket listens (plugins/agent/activation.ts),
 * or which closes when it exits. Returns its pid, or -1.
 */
static pid_t spawn_server(const char *sock, int *ready) {
  char self[PATH_MAX], flaxd[PATH_MAX + 16], multi[PATH_MAX + 16], log[PATH_MAX], path_env[PATH_MAX + 8];
  *ready = -1;
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return -1;
  self[n] = '\0';
  *strrchr(self, '/') = '\0';
  snprintf(flaxd, sizeof(flaxd), "%s/flaxd", self);
  snprintf(multi, sizeof(multi), "%s/flax", self);
  const char *ldir = getenv("FLAX_LOG_DIR");
  snprintf(log, sizeof(log), "%s/cni-server.log", ldir && *ldir ? ldir : LOG_DIR);
  const char *path = getenv("PATH");
  snprintf(path_env, sizeof(path_env), "PATH=%s", path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) p[0] = p[1] = -1; /* then woken by the poll's timeout only */
  pid_t pid = fork();
  if (pid != 0) {
    if (p[1] >= 0) close(p[1]); /* flaxd's copy is the only one left: its exit is seen as the pipe's end */
    if (pid > 0) *ready = p[0];
    else if (p[0] >= 0) close(p[0]);
    return pid;
  }
  if (chdir("/") != 0) _exit(127);
  mkdir_parent(log);
  int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (out < 0) _exit(127);
  detach(out, p[1]);
  /* nothing of the runtime's signal state either (an ignored signal survives exec) */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  umask(022);
  char *env[] = {path_env, p[1] >= 0 ? "FLAX_CNI_READY_FD=3" : NULL, NULL};
  char *args[] = {"flaxd", "--no-overlay", "--cni-socket", (char *)sock, "--idle-exit", "10m", "--gc-interval", "0", NULL};
  execve(flaxd, args, env);
  int err = errno;
  execve(multi, args, env); /* the package: the multi-call binary, dispatching on argv[0] */
  dprintf(2, "flax cniclient: cannot start the CNI server: %s: %s; %s: %s\n", flaxd, strerror(err), multi, strerror(errno));
  _exit(127);
}

/*
 * Auto mode, no server answered: start one (or wait for the one being
 * started) and return a connection to it; -1 when it does not come up.
 */
static int autostart(const struct sockaddr_un *a, const char *sock) {
  char lockp[PATH_MAX];
  snprintf(lockp, sizeof(lockp), "%s.autostart", sock);
  mkdir_parent(lockp);
  int lfd = open(lockp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lfd < 0) return -1;
  while (flock(lfd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      close(lfd);
      return -1;
    }
  }
  /* whoever held the lock may have started it meanwhile */
  int fd = try_connect(a);
  if (fd >= 0) {
    close(lfd);
    return fd;
  }
  char buf[32] = {0};
  long long failed = 0;
  if (pread(lfd, buf, sizeof(buf) - 1, 0) > 0) failed = atoll(buf);
  time_t now = time(NULL);
  if (failed > 0 && now - failed >= 0 && now - failed < AUTOSTART_RETRY_S) {
    close(lfd);
    return -1;
  }
  /* a server holding <sock>.lock is starting (waited for) or stopping (then one is started) */
  pid_t child = 0;
  int ok = 0;
  const char *w = getenv("FLAX_CNI_SERVER_WAIT_MS"); /* a slow host (or a test on a loaded one) */
  long wait_ms = w && *w ? atol(w) : AUTOSTART_WAIT_MS;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  /* the server we start says when it listens (the ready pipe: woken at once); one someone else is starting (it
     holds <sock>.lock) is polled for */
  int ready = -1;
  long step_us = 2000;
  for (;;) {
    fd = try_connect(a);
    if (fd >= 0) {
      ok = 1;
      break;
    }
    if (child == 0 && !server_lock_held(sock) && (child = spawn_server(sock, &ready)) < 0) break;
    if (child > 0 && waitpid(child, NULL, WNOHANG) == child) break; /* it exited: it will not come up */
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= wait_ms) break;
    if (ready >= 0) {
      struct pollfd pfd = {.fd = ready, .events = POLLIN};
      if (poll(&pfd, 1, (int)(step_us / 1000)) > 0) {
        char b[16];
        ssize_t r = read(ready, b, sizeof(b));
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) { /* its end closed (it listens, or it exited): the timeout polls from here */
          close(ready);
          ready = -1;
        }
      }
    } else {
      usleep(step_us);
    }
    if (step_us < 20000) step_us += step_us / 2;
  }
  if (ready >= 0) close(ready);
  /* a start of ours that did not come up is remembered; one that did clears it */
  if (ok || child != 0) {
    char rec[32];
    int len = ok ? 0 : snprintf(rec, sizeof(rec), "%lld\n", (long long)time(NULL));
    if (ftruncate(lfd, 0) == 0 && len > 0 && pwrite(lfd, rec, (size_t)len, 0) != len) { /* best effort */ }
  }
  close(lfd);
  return ok ? fd : -1;
}

static int is_plugin(const char *name) {
  for (size_t i = 0; i < COUNT(plugins); i++) {
    if (strcmp(name, plugins[i]) == 0) return 1;
  }
  return 0;
}

/* skel's VERSION answer (plugins/pkg/skel: versionInfo rendered as JSON.stringify(v, null, 4) + "\n") */
static int print_version(void) {
  char out[512];
  size_t n = (size_t)snprintf(out, sizeof(out), "{\n    \"cniVersion\": \"%s\",\n    \"supportedVersions\": [\n", versions[COUNT(versions) - 1]);
  for (size_t i = 0; i < COUNT(versions); i++) {
    n += (size_t)snprintf(out + n, sizeof(out) - n, "        \"%s\"%s\n", versions[i], i + 1 < COUNT(versions) ? "," : "");
  }
  n += (size_t)snprintf(out + n, sizeof(out) - n, "    ]\n}\n");
  return write_full(1, out, n);
}

/*
 * Auto mode, a VERSION call and no server: the start (or the wait for the one
 * being started) runs in a detached child, so the caller is answered at once.
 */
static void autostart_detached(const struct sockaddr_un *a, const char *sock) {
  pid_t pid = fork();
  if (pid != 0) return; /* the caller (or no fork: nothing is started, the call is answered all the same) */
  detach(-1, -1);
  signal(SIGPIPE, SIG_IGN);
  int fd = autostart(a, sock);
  _exit(fd >= 0 ? 0 : 1); /* the connection closes unused: flaxd drops an empty one quietly */
}

int main(int argc, char **argv) {
  (void)argc;
  const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  const char *sock = getenv("FLAX_CNI_SOCKET");
  if (sock == NULL) sock = DEFAULT_SOCKET;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (*sock == '\0' || strlen(sock) >= sizeof(a.sun_path) || strlen(name) == 0 || strlen(name) > 255) run_standalone(name, argv);
  memcpy(a.sun_path, sock, strlen(sock) + 1);
  int fd = try_connect(&a);
  if (fd < 0) {
    int start = (errno == ENOENT || errno == ECONNREFUSED) && geteuid() == 0 && auto_mode();
    const char *cmd = getenv("CNI_COMMAND");
    if (cmd && strcmp(cmd, "VERSION") == 0 && is_plugin(name)) {
      read_stdin(); /* as a plugin does: the runtime's write of the config never meets a closed pipe */
      int rc = print_version() == 0 ? 0 : 1;
      if (start) autostart_detached(&a, sock);
      return rc;
    }
    if (start) fd = autostart(&a, sock);
  }
  if (fd < 0) run_standalone(name, argv);  /* nothing was sent: the server never saw this call */
  signal(SIGPIPE, SIG_IGN);
  read_stdin();

  int fds[3], nfds = 0;
  struct req_hdr h = {.magic = "FLAXCNI1"};
  fds[nfds] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fds[nfds] < 0) cni_fail("flax cniclient: cannot open its own network namespace");
  nfds++;
  const char *netns = getenv("CNI_NETNS");
  if (netns && netns[0] == '/') {
    int nfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nfd >= 0) {
      fds[nfds++] = nfd;
      h.flags |= 1;
    } else {
      h.netns_errno = errno;
    }
  }
  fds[nfds] = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fds[nfds] >= 0) {
    nfds++;
    h.flags |= 2;
  }
  size_t env_len = 0;
  for (char **e = environ; *e; e++) env_len += strlen(*e) + 1;
  char *env = malloc(env_len + 1);
  if (!env) cni_fail("flax cniclient: out of memory");
  size_t off = 0;
  for (char **e = environ; *e; e++) {
    size_t l = strlen(*e) + 1;
    memcpy(env + off, *e, l);
    off += l;
  }
  h.name_len = (uint32_t)strlen(name);
  h.env_len = (uint32_t)env_len;
  h.stdin_len = in_len;
  h.nfds = (uint32_t)nfds;

  char cbuf[CMSG_SPACE(sizeof(fds))];
  memset(cbuf, 0, sizeof(cbuf));
  struct iovec iov = {&h, sizeof(h)};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = CMSG_SPACE(sizeof(int) * nfds)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  ssize_t sent;
  do sent = sendmsg(fd, &msg, MSG_NOSIGNAL); while (sent < 0 && errno == EINTR);
  if (sent < 0 || (sent < (ssize_t)sizeof(h) && write_full(fd, (char *)&h + sent, sizeof(h) - sent) != 0) ||
      write_full(fd, name, h.name_len) != 0 || write_full(fd, env, env_len) != 0 ||
      (in_len && write_full(fd, in_buf, in_len) != 0)) {
    server_gone(fd, name, argv, "while the request was sent");
  }
  for (int i = 0; i < nfds; i++) close(fds[i]);

  struct rep_hdr r;
  if (read_full(fd, &r, sizeof(r)) != 0 || memcmp(r.magic, "FLAXCNR1", 8) != 0) {
    server_gone(fd, name, argv, "before replying");
  }
  if (r.exit_code == RUN_STANDALONE && r.stdout_len == 0 && r.stderr_len == 0) {
    /* the server did nothing: the standalone plugin runs with the stdin read above */
    close(fd);
    replay_stdin();
    run_standalone(name, argv);
  }
  /* the whole reply first: a cut reply must not leave half a result on stdout */
  if (r.stdout_len > (256u << 20) || r.stderr_len > (256u << 20)) cni_fail("flax CNI server sent an oversized reply");
  char *out = malloc(r.stdout_len + r.stderr_len + 1);
  if (!out) cni_fail("flax cniclient: out of memory");
  if (read_full(fd, out, r.stdout_len + r.stderr_len) != 0) {
    free(out);
    server_gone(fd, name, argv, "in the middle of its reply");
  }
  if (write_full(1, out, r.stdout_len) != 0) return 1;
  write_full(2, out + r.stdout_len, r.stderr_len);
  return r.exit_code;
}
