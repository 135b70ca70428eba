/*
 * flax pause: the infra process of a pod sandbox (after kubernetes'
 * build/pause/linux/pause.c). It holds the namespaces open, reaps every
 * exited child (orphans of the pod are re-parented to it when it is PID 1 of
 * the pod's PID namespace) and does nothing else. SIGINT/SIGTERM: exit 0.
 * Exit codes: 0 signalled down, 1 setup failed, 42 pause(2) loop ended.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "flax-pause 0.2.0"

static void sigdown(int sig) {
  (void)sig;
  _exit(0);
}

static void sigreap(int sig) {
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
  if (handle(SIGINT, sigdown) < 0 || handle(SIGTERM, sigdown) < 0 || handle(SIGCHLD, sigreap) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  if (getpid() != 1)
    fprintf(stderr, "pause: warning: not running as PID 1 (orphans will not be reaped here)\n");
  /* children that exited before the SIGCHLD handler was installed */
  sigreap(SIGCHLD);
  for (;;) pause();
  fprintf(stderr, "pause: error: infinite loop terminated\n");
  return 42;
}
