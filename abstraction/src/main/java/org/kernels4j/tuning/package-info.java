/**
 * The tuning SPI: how a kernel declares what is tunable and how it gets its launch parameters at dispatch.
 *
 * <p>A kernel declares a {@link org.kernels4j.tuning.TuningSpace} (named integer parameters with candidate
 * values, constraints on a device's capabilities, a default that is correct everywhere, a shape bucket per
 * problem, a hash of its source) and calls {@link org.kernels4j.tuning.TuningSpace#resolve} when it
 * dispatches. {@link org.kernels4j.tuning.Tuning} answers from, in order, run-time overrides, a
 * {@link org.kernels4j.tuning.TuningLookup} found with {@link java.util.ServiceLoader} (the
 * {@code kernels4j-autotune} module's per-device cache and shipped defaults), and the kernel's default.
 * Applications read and override parameters through {@link org.kernels4j.tuning.Tuning}; tools observe
 * which kernels an op dispatched with {@link org.kernels4j.tuning.Tuning#trace}.
 */
package org.kernels4j.tuning;
