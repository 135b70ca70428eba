/*
 * flax pause: the infra process of a pod sandbox. It holds the namespaces
 * open, reaps orphans (when PID 1 of a PID namespace) and exits on
 * SIGINT/SIGTERM with distinct codes so the runtime can tell them apart.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "flax-pause 0.1.0"

static void on_sigint(int sig) { (void)sig; _exit(2); }
static void on_sigterm(int sig) { (void)sig; _exit(0); }

static void on_sigchld(int sig) {
  int saved = errno;
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {}
  errno = saved;
}

static int handle(int sig, void (*fn)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = sig == SIGCHLD ? SA_NOCLDSTOP | SA_RESTART : 0;
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0) {
      printf("%s\n", VERSION);
      return 0;
    }
  }
  /* handlers first: whoever waits for our stderr may signal us at once */
  if (handle(SIGINT, on_sigint) < 0 || handle(SIGTERM, on_sigterm) < 0 ||
      handle(SIGCHLD, on_sigchld) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  if (getpid() != 1)
    fprintf(stderr, "pause: warning: not running as PID 1 (orphans will not be reaped here)\n");
  for (;;) pause();
  fprintf(stderr, "pause: error: infinite loop terminated\n");
  return 42;
}
