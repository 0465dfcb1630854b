package org.kernels4j.cpu;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * The one worker pool of the CPU backend and its parallel loop.
 *
 * <p>The pool has {@code availableProcessors() - 1} daemon threads; the calling thread is always the
 * remaining worker, so a loop runs on at most as many threads as there are cores. Tasks are claimed from
 * a shared counter, so uneven tasks (causal attention) and a busy core (the machine is shared) balance
 * themselves; the caller never waits for a pool thread that has not started, it simply claims the tasks
 * itself. A loop started from inside a loop body runs serially on that thread: parallel loops never nest,
 * so the machine is never oversubscribed by kernels4j. The system property {@code kernels4j.cpu.threads}
 * sets the number of threads (like an intra-op thread count); it defaults to the available processors.
 */
final class Parallel {

    /** Body of a parallel loop. */
    @FunctionalInterface
    interface Body {
        /**
         * Runs one task.
         *
         * @param worker index of the participating thread, in {@code [0, workers)}: stable for the whole loop on
         *               one thread, so it can select a per-worker partial result
         * @param task   the task, in {@code [0, tasks)}
         */
        void run(int worker, int task);
    }

    /** Threads that may run one loop: the pool plus the caller. */
    static final int THREADS = Math.max(1,
            Integer.getInteger("kernels4j.cpu.threads", Runtime.getRuntime().availableProcessors()));

    private static final ExecutorService POOL = THREADS > 1 ? Executors.newFixedThreadPool(THREADS - 1, r -> {
        Thread t = new Thread(r);
        t.setDaemon(true);
        t.setName("kernels4j-cpu-" + t.threadId());
        return t;
    }) : null;

    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> Boolean.FALSE);

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
     * Runs {@code body} for every task in {@code [0, tasks)} on {@code workers} threads (the caller is worker
     * 0) and returns when all have finished. The first exception thrown by a task stops the claiming of new
     * tasks and is rethrown here.
     */
    static void run(int tasks, int workers, Body body) {
        if (tasks <= 0) {
            return;
        }
        if (workers <= 1 || tasks == 1 || INSIDE.get()) {
            runSerially(tasks, body);
            return;
        }
        Loop loop = new Loop(tasks, body, Thread.currentThread());
        int helpers = Math.min(workers, tasks) - 1;
        for (int i = 0; i < helpers; i++) {
            try {
                POOL.execute(loop::work);
            } catch (RejectedExecutionException e) {
                break;
            }
        }
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

    /** The shared state of one parallel loop. */
    private static final class Loop {
        private final int tasks;
        private final Body body;
        private final Thread caller;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger done = new AtomicInteger();
        private final AtomicInteger workerIds = new AtomicInteger();
        private final AtomicReference<Throwable> failure = new AtomicReference<>();

        Loop(int tasks, Body body, Thread caller) {
            this.tasks = tasks;
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
                int t;
                while ((t = next.getAndIncrement()) < tasks) {
                    try {
                        if (failure.get() == null) {
                            body.run(worker, t);
                        }
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    } finally {
                        if (done.incrementAndGet() == tasks) {
                            LockSupport.unpark(caller);
                        }
                    }
                }
            } finally {
                INSIDE.set(Boolean.FALSE);
            }
        }

        void await() {
            boolean interrupted = false;
            while (done.get() < tasks) {
                LockSupport.park(this);
                if (Thread.interrupted()) {
                    interrupted = true;
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
