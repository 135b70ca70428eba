/*
 * flax nsexec: join namespaces given as paths (and/or create new ones), then
 * run a command there — a tiny static stand-in for util-linux nsenter/unshare,
 * which not every node image has. Used by `flax sandbox` to start pause and to
 * run commands in a sandbox.
 *
 *   nsexec [--user=P] [--ipc=P] [--uts=P] [--net=P] [--pid=P] [--mnt=P]
 *          [--new=net,ipc,uts,pid] [--hostname=H] [--detach] [--report-fd=N]
 *          [--] CMD [ARG]...
 *
 * Every path is opened before any setns (a later mnt join must not change
 * how an earlier path resolves); joins go user, ipc, uts, net, pid, mnt.
 * The command always runs in a forked child: a pid namespace (joined or new)
 * applies only to children, so CMD is in it and its orphans are re-parented
 * to that namespace's init (the sandbox's pause). A close-on-exec pipe tells
 * the parent whether exec worked.
 *  - attached: the parent forwards INT/TERM/HUP/QUIT/USR1/USR2 and exits
 *    with CMD's status (128+N when killed by signal N);
 *  - --detach: the child starts a new session; the parent writes the child's
 *    pid and "\n" to fd N (--report-fd, default 1) and exits 0.
 * Exit codes of nsexec itself: 125 usage/namespace error, 126 CMD not
 * executable, 127 CMD not found. Messages start with "nsexec: ".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "flax-nsexec 0.1.0"

static const struct {
  const char *name;
  int type;
} kinds[] = {
    {"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
    {"net", CLONE_NEWNET},   {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static pid_t child = -1;

static int fail(const char *what, const char *arg, int err) {
  fprintf(stderr, "nsexec: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(err));
  return 125;
}

static int usage(const char *msg, const char *arg) {
  fprintf(stderr, "nsexec: %s%s\n", msg, arg ? arg : "");
  return 125;
}

static void forward(int sig) {
  if (child > 0) kill(child, sig);
}

/* --new=net,ipc,uts,pid → CLONE_* flags; -1 on an unknown word */
static int parse_new(const char *list) {
  int flags = 0;
  char buf[64];
  if (strlen(list) >= sizeof buf) return -1;
  strcpy(buf, list);
  for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
    size_t k = 0;
    while (k < NKINDS && (strcmp(w, kinds[k].name) != 0 || kinds[k].type == CLONE_NEWUSER || kinds[k].type == CLONE_NEWNS)) k++;
    if (k == NKINDS) return -1;
    flags |= kinds[k].type;
  }
  return flags;
}

int main(int argc, char **argv) {
  const char *paths[NKINDS] = {0};
  const char *hostname = NULL;
  int newflags = 0, detach = 0, report = 1, i;
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i], *eq = strchr(a, '=');
    size_t k;
    if (strcmp(a, "--") == 0) { i++; break; }
    if (strcmp(a, "-v") == 0) { printf("%s\n", VERSION); return 0; }
    if (strcmp(a, "--detach") == 0) { detach = 1; continue; }
    if (!eq || strncmp(a, "--", 2) != 0 || eq[1] == '\0') return usage("bad option (want --KEY=VALUE): ", a);
    for (k = 0; k < NKINDS; k++)
      if ((size_t)(eq - a - 2) == strlen(kinds[k].name) && strncmp(a + 2, kinds[k].name, eq - a - 2) == 0) break;
    if (k < NKINDS) paths[k] = eq + 1;
    else if (strncmp(a, "--new=", 6) == 0) { if ((newflags = parse_new(eq + 1)) < 0) return usage("--new wants net,ipc,uts,pid, got ", eq + 1); }
    else if (strncmp(a, "--hostname=", 11) == 0) hostname = eq + 1;
    else if (strncmp(a, "--report-fd=", 12) == 0) report = atoi(eq + 1);
    else return usage("unknown option ", a);
  }
  if (i >= argc) return usage("no command given", NULL);
  if (hostname && !(newflags & CLONE_NEWUTS)) return usage("--hostname needs --new=uts", NULL);
  /* the report fd is the parent's alone: CMD must not hold it open */
  if (report < 1 || (report > 2 && fcntl(report, F_SETFD, FD_CLOEXEC) < 0)) return usage("bad --report-fd", NULL);

  int fds[NKINDS];
  for (size_t k = 0; k < NKINDS; k++) {
    fds[k] = -1;
    if (paths[k] && (fds[k] = open(paths[k], O_RDONLY | O_CLOEXEC)) < 0) return fail("open", paths[k], errno);
  }
  for (size_t k = 0; k < NKINDS; k++)
    if (fds[k] >= 0 && setns(fds[k], kinds[k].type) < 0) return fail("setns", paths[k], errno);
  if (newflags && unshare(newflags) < 0) return fail("unshare", NULL, errno);
  if (hostname && sethostname(hostname, strlen(hostname)) < 0) return fail("sethostname", hostname, errno);

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) return fail("pipe", NULL, errno);
  child = fork();
  if (child < 0) return fail("fork", NULL, errno);
  if (child == 0) {
    close(pipefd[0]);
    if (detach) setsid();
    execvp(argv[i], argv + i);
    int err = errno;
    ssize_t w = write(pipefd[1], &err, sizeof err);
    (void)w;
    _exit(err == ENOENT ? 127 : 126);
  }
  close(pipefd[1]);
  int err = 0;
  ssize_t n;
  while ((n = read(pipefd[0], &err, sizeof err)) < 0 && errno == EINTR) {}
  if (n > 0) {
    waitpid(child, NULL, 0);
    fprintf(stderr, "nsexec: exec %s: %s\n", argv[i], strerror(err));
    return err == ENOENT ? 127 : 126;
  }
  if (detach) {
    dprintf(report, "%d\n", (int)child);
    return 0;
  }
  static const int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  for (size_t s = 0; s < sizeof fwd / sizeof fwd[0]; s++) sigaction(fwd[s], &sa, NULL);
  int status;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return fail("waitpid", NULL, errno);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
