package org.kernels4j.cpu;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * The worker threads of the CPU backend and its parallel loop.
 *
 * <p>There are {@code THREADS - 1} daemon workers; the calling thread is always the remaining worker, so a loop
 * runs on at most as many threads as there are cores. Tasks are claimed from a shared counter, so uneven tasks
 * (causal attention) and a busy core (the machine is shared) balance themselves; the caller never waits for a
 * worker that has not started, it simply claims the tasks itself. A loop of many small tasks ({@link #runSmall}: a
 * filter transform has one per filter) claims them a run at a time, about {@link #CLAIMS_PER_THREAD} runs per
 * thread, so that the threads do not take turns on the counter's cache line once per task. A loop started from
 * inside a loop body runs serially on that thread: parallel loops never nest, so the machine is never
 * oversubscribed by kernels4j. The system property {@code kernels4j.cpu.threads} sets the number of threads (like
 * an intra-op thread count); it defaults to the available processors.
 *
 * <p>A worker that runs out of work spins for {@link #SPIN_NANOS} before it parks, and so does a caller waiting
 * for the last task: one op makes several loops (packing, the product, a reduction) and a benchmark or training
 * step makes op after op, and a parked thread takes tens of microseconds to wake, often longer when another
 * process holds the core (measured on the shared 2-core machine: with parking only, a 10 ms 1 × 1 convolution on
 * two threads took 6-10 ms, bimodal; OpenMP runtimes spin the same way by default).
 */
final class Parallel {

    /** Body of a parallel loop. */
    @FunctionalInterface
    interface Body {
        /**
         * Runs one task.
         *
         * @param worker index of the participating thread, in {@code [0, workers)}, stable for the whole loop on
         *               one thread (in {@link #runSliced}: the slice's index instead)
         * @param task   the task, in {@code [0, tasks)}
         */
        void run(int worker, int task);
    }

    /** Threads that may run one loop: the workers plus the caller. */
    static final int THREADS = Math.max(1,
            Integer.getInteger("kernels4j.cpu.threads", Runtime.getRuntime().availableProcessors()));

    /** How long an idle worker, or a caller waiting for the last task, spins before it parks (tuning knob). */
    static final long SPIN_NANOS = Long.getLong("kernels4j.cpu.spinNanos", 200_000L);

    /** Claims per participating thread in a loop of {@link #runSmall} (see the class comment). */
    static final int CLAIMS_PER_THREAD = 16;

    /** Loops waiting for helpers: one entry per helper a loop asks for. */
    private static final ConcurrentLinkedQueue<Loop> WORK = new ConcurrentLinkedQueue<>();

    /** The workers, for unparking; started lazily with the first parallel loop. */
    private static final Thread[] WORKERS = new Thread[Math.max(0, THREADS - 1)];

    /** How many workers are parked (not spinning): an offer wakes one only then. */
    private static final AtomicInteger PARKED = new AtomicInteger();

    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> Boolean.FALSE);

    static {
        for (int i = 0; i < WORKERS.length; i++) {
            Thread t = new Thread(Parallel::serve, "kernels4j-cpu-" + (i + 1));
            t.setDaemon(true);
            WORKERS[i] = t;
            t.start();
        }
    }

    private Parallel() {
    }

    /**
     * How many workers a loop of {@code tasks} tasks worth {@code work} units of work in total will use:
     * one when the work is below {@code minWorkPerThread} per extra thread, inside another loop, or with a
     * single task.
     */
    static int workers(int tasks, double work, double minWorkPerThread) {
        if (tasks <= 1 || THREADS == 1 || INSIDE.get()) {
            return 1;
        }
        long byWork = (long) Math.min(THREADS, Math.floor(work / minWorkPerThread));
        return (int) Math.max(1, Math.min(tasks, byWork));
    }

    /**
     * Runs {@code body} for every task in {@code [0, tasks)} grouped into {@code slices} (1 to {@code tasks})
     * contiguous slices (slice {@code i} holds tasks {@code [i·tasks/slices, (i+1)·tasks/slices)}), each slice's
     * tasks in order on one thread, on {@code workers} threads; the body gets the slice's index where {@link #run}
     * passes the worker's.
     * Partial sums kept per slice and added up in slice order afterwards come out bit for bit the same on every
     * run. Per-worker partials do not: which tasks a worker claims depends on the timing of the threads, and float
     * addition is not associative.
     */
    static void runSliced(int tasks, int slices, int workers, Body body) {
        if (tasks <= 0) {
            return;
        }
        if (slices < 1 || slices > tasks) {
            throw new IllegalArgumentException("slices " + slices + " of " + tasks + " tasks");
        }
        run(slices, workers, (worker, slice) -> {
            int last = (int) ((long) tasks * (slice + 1) / slices);
            for (int t = (int) ((long) tasks * slice / slices); t < last; t++) {
                body.run(slice, t);
            }
        });
    }

    /**
     * Runs {@code body} for every task in {@code [0, tasks)} on {@code workers} threads (the caller is worker
     * 0) and returns when all have finished. The first exception thrown by a task stops the claiming of new
     * tasks and is rethrown here.
     */
    static void run(int tasks, int workers, Body body) {
        run(tasks, workers, false, body);
    }

    /**
     * As {@link #run}, for many tasks of a few microseconds each (a plane's copy, a filter's transform): the threads
     * claim runs of consecutive tasks, about {@link #CLAIMS_PER_THREAD} per thread, instead of one at a time
     * (claimed one at a time, conv-r28's 16 384 filter transforms and 1 024 plane copies made its Winograd forward
     * 1.26× slower).
     */
    static void runSmall(int tasks, int workers, Body body) {
        run(tasks, workers, true, body);
    }

    private static void run(int tasks, int workers, boolean inRuns, Body body) {
        if (tasks <= 0) {
            return;
        }
        if (workers <= 1 || tasks == 1 || INSIDE.get() || WORKERS.length == 0) {
            runSerially(tasks, body);
            return;
        }
        int helpers = Math.min(Math.min(workers, tasks) - 1, WORKERS.length);
        int run = inRuns ? Math.max(1, tasks / ((helpers + 1) * CLAIMS_PER_THREAD)) : 1;
        Loop loop = new Loop(tasks, run, body, Thread.currentThread());
        for (int i = 0; i < helpers; i++) {
            WORK.offer(loop);
        }
        wake(helpers);
        loop.work();
        loop.await();
    }

    private static void runSerially(int tasks, Body body) {
        boolean outer = !INSIDE.get();
        INSIDE.set(Boolean.TRUE);
        try {
            for (int t = 0; t < tasks; t++) {
                body.run(0, t);
            }
        } finally {
            if (outer) {
                INSIDE.set(Boolean.FALSE);
            }
        }
    }

    /** Unparks up to {@code n} workers if any are parked (spinning ones find the work themselves). */
    private static void wake(int n) {
        if (PARKED.get() == 0) {
            return;
        }
        for (Thread t : WORKERS) {
            if (n-- <= 0) {
                return;
            }
            LockSupport.unpark(t);
        }
    }

    /** A worker's life: take a loop, help with it, spin for the next one, park when none comes. */
    private static void serve() {
        while (true) {
            Loop loop = WORK.poll();
            if (loop == null) {
                long until = System.nanoTime() + SPIN_NANOS;
                while ((loop = WORK.poll()) == null && System.nanoTime() < until) {
                    Thread.onSpinWait();
                }
            }
            if (loop == null) {
                PARKED.incrementAndGet();
                // re-check after announcing, so an offer made meanwhile is not missed
                loop = WORK.poll();
                if (loop == null) {
                    LockSupport.park(Parallel.class);
                }
                PARKED.decrementAndGet();
                if (loop == null) {
                    continue;
                }
            }
            loop.work();
        }
    }

    /** The shared state of one parallel loop. */
    private static final class Loop {
        private final int tasks;
        private final int run;
        private final Body body;
        private final Thread caller;
        // long: the last claims overshoot the task count by up to a run per thread
        private final AtomicLong next = new AtomicLong();
        private final AtomicInteger done = new AtomicInteger();
        private final AtomicInteger workerIds = new AtomicInteger();
        private final AtomicReference<Throwable> failure = new AtomicReference<>();
        private volatile boolean callerParked;

        /** {@code run}: tasks per claim. */
        Loop(int tasks, int run, Body body, Thread caller) {
            this.tasks = tasks;
            this.run = run;
            this.body = body;
            this.caller = caller;
        }

        void work() {
            if (next.get() >= tasks) {
                return;
            }
            int worker = workerIds.getAndIncrement();
            INSIDE.set(Boolean.TRUE);
            try {
                long first;
                while ((first = next.getAndAdd(run)) < tasks) {
                    int end = (int) Math.min(tasks, first + run);
                    try {
                        for (int t = (int) first; t < end && failure.get() == null; t++) {
                            body.run(worker, t);
                        }
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    } finally {
                        if (done.addAndGet(end - (int) first) == tasks && callerParked) {
                            LockSupport.unpark(caller);
                        }
                    }
                }
            } finally {
                INSIDE.set(Boolean.FALSE);
            }
        }

        void await() {
            long until = System.nanoTime() + SPIN_NANOS;
            while (done.get() < tasks && System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            boolean interrupted = false;
            if (done.get() < tasks) {
                callerParked = true;
                while (done.get() < tasks) {
                    LockSupport.park(this);
                    if (Thread.interrupted()) {
                        interrupted = true;
                    }
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            Throwable e = failure.get();
            if (e instanceof RuntimeException re) {
                throw re;
            }
            if (e instanceof Error err) {
                throw err;
            }
            if (e != null) {
                throw new IllegalStateException(e);
            }
        }
    }
}
