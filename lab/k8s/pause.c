/* The lab's pod sandbox ("pause") process: sleeps until told to stop, reaps orphans.
 * Built static by lab/k8s/cluster.py (no registry outside is reachable for
 * registry.k8s.io/pause). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_chld(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
    struct sigaction a = {0}, c = {0};
    a.sa_handler = on_term;
    sigaction(SIGINT, &a, NULL);
    sigaction(SIGTERM, &a, NULL);
    c.sa_handler = on_chld;
    c.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &c, NULL);
    for (;;) pause();
}
