package org.kernels4j.bench;

/** The intra-op thread count shared by kernels4j's CPU backend and the peers, so that they compete fairly. */
final class Threads {

    private Threads() {
    }

    /** {@code kernels4j.cpu.threads} (the CPU backend's own setting), else the machine's cores. */
    static int intraOp() {
        return Integer.getInteger("kernels4j.cpu.threads", Runtime.getRuntime().availableProcessors());
    }
}
