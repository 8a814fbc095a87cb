/* Ctrl-C inside a kernel: while a kernel runs without the GIL, Python's own SIGINT handler only
 * sets a flag that nobody reads until the kernel returns (a chunk can take minutes). During a
 * kernel this handler records the signal instead; the kernels poll fc_interrupt_pending() once
 * per step and stop, marking unfinished trajectories FC_INTERRUPTED, and the Python caller
 * raises. Each extension module has its own copy (static), installed only around its kernels. */
#ifndef FLOWCORE_INTERRUPT_H
#define FLOWCORE_INTERRUPT_H
#include <signal.h>

static volatile sig_atomic_t fc_sigint_seen = 0;
static void (*fc_sigint_previous)(int) = SIG_DFL;
static int fc_sigint_installed = 0;

static void fc_on_sigint(int sig) { (void)sig; fc_sigint_seen = 1; }

static inline int fc_interrupt_pending(void) { return fc_sigint_seen != 0; }

/* Take over SIGINT (call with the GIL held, from the main thread). */
static inline void fc_interrupt_install(void)
{
    fc_sigint_seen = 0;
    void (*prev)(int) = signal(SIGINT, fc_on_sigint);
    if (prev != SIG_ERR) {
        fc_sigint_previous = prev;
        fc_sigint_installed = 1;
    }
}

/* Give SIGINT back; returns 1 if it arrived meanwhile. */
static inline int fc_interrupt_restore(void)
{
    if (fc_sigint_installed) {
        signal(SIGINT, fc_sigint_previous);
        fc_sigint_installed = 0;
    }
    int seen = fc_sigint_seen != 0;
    fc_sigint_seen = 0;
    return seen;
}
#endif
