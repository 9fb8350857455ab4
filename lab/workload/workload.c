/*
 * ferryman's lab workload: holds MIB MiB of random memory, rewrites DIRTY MiB of it
 * per second, and prints a heartbeat line every INTERVAL ms:
 *
 *     hb <counter> <unix time in ns> <checksum>
 *
 * The counter proves that state survives a migration (it continues, never restarts);
 * the timestamps show the gap the application saw. Built static, so it runs in an
 * image made from a folder (no registry needed).
 *
 * usage: workload [MIB [DIRTY_MIB_PER_S [INTERVAL_MS]]]   (defaults 64 4 10)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    double dirty_mib_s = argc > 2 ? atof(argv[2]) : 4.0;
    long interval_ms = argc > 3 ? strtol(argv[3], NULL, 10) : 10;
    if (interval_ms < 1) interval_ms = 1;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    setvbuf(stdout, NULL, _IOLBF, 0);

    size_t words = mib * 1024 * 1024 / sizeof(uint64_t);
    uint64_t *mem = NULL;
    if (words) {
        mem = malloc(words * sizeof(uint64_t));
        if (!mem) { fprintf(stderr, "workload: cannot allocate %zu MiB\n", mib); return 1; }
    }
    uint64_t seed = now_ns() | 1;
    for (size_t i = 0; i < words; i++) mem[i] = xorshift(&seed);
    printf("workload: holding %zu MiB, dirtying %.1f MiB/s, heartbeat every %ld ms\n",
           mib, dirty_mib_s, interval_ms);

    /* Dirty whole pages, walking through memory, so the dirty set is what we say. */
    size_t page_words = 4096 / sizeof(uint64_t);
    size_t pages = words / page_words;
    double pages_per_tick = dirty_mib_s * 256.0 * interval_ms / 1000.0;
    double owed = 0;
    size_t cursor = 0;
    uint64_t counter = 0, sum = 0;
    struct timespec tick = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
    while (!stop) {
        owed += pages_per_tick;
        while (owed >= 1.0 && pages) {
            uint64_t *p = mem + (cursor % pages) * page_words;
            for (size_t w = 0; w < page_words; w += 8) p[w] = xorshift(&seed);
            sum += p[0];
            cursor++;
            owed -= 1.0;
        }
        printf("hb %llu %llu %llx\n", (unsigned long long)counter++,
               (unsigned long long)now_ns(), (unsigned long long)sum);
        nanosleep(&tick, NULL);
    }
    printf("workload: stopping at counter %llu\n", (unsigned long long)counter);
    return 0;
}
