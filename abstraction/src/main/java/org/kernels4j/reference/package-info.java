/**
 * Plain float64 reference implementations of every op, forward and backward: the ground truth that the
 * conformance suite and {@code kernels4j check} compare backends against.
 *
 * <p>They are written for clarity, not speed: straightforward loops, float64 accumulation, no tiling and
 * no online softmax, so that a reader can check them against the formulas in the ops' documentation.
 * Inputs and outputs are flat row-major {@code double[]} arrays in the layouts the ops document, sized by
 * the validated {@code org.kernels4j.spi} problem records. Use them for small and medium problems only.
 */
package org.kernels4j.reference;
