package org.kernels4j;

import org.kernels4j.spi.AttentionProblem;

/**
 * Scaled dot-product attention, forward and backward, in layout {@code [B, H, N, d]}:
 * {@code O = softmax(scale * Q K^T + mask) V}, as PyTorch's {@code scaled_dot_product_attention} and ONNX
 * {@code Attention} (opset 23).
 *
 * <p>Shapes: {@code q}, {@code o}, {@code dO}, {@code dq} are {@code [B, Hq, Nq, d]}; {@code k}, {@code v},
 * {@code dk}, {@code dv} are {@code [B, Hkv, Nk, d]} where {@code Hkv} divides {@code Hq} (grouped-query:
 * query head {@code h} uses key/value head {@code h / (Hq / Hkv)}; multi-query when {@code Hkv = 1}); the
 * log-sum-exp {@code lse} is {@link DType#FLOAT32} {@code [B, Hq, Nq]}, natural log of the row's sum of
 * {@code exp(scale * q.k)} over visible keys. All tensors but {@code lse} share {@code q}'s dtype and device.
 *
 * <p>Masks: {@link CausalMask#TOP_LEFT} lets query {@code i} see keys {@code j <= i} (PyTorch's
 * {@code is_causal}); {@link CausalMask#BOTTOM_RIGHT} lets it see {@code j <= i + Nk - Nq} (FlashAttention
 * 2.1+, KV-cache decoding). A query row that sees no key yields {@code O = 0}, {@code lse = -inf} and zero
 * gradients. Immutable and thread-safe; validation happens before anything is queued.
 */
public final class Attention {

    /** Which causal mask, if any, hides future keys. */
    public enum CausalMask {
        /** Every query sees every key. */
        NONE,
        /** Query {@code i} sees keys {@code j <= i}. */
        TOP_LEFT,
        /** Query {@code i} sees keys {@code j <= i + Nk - Nq}. */
        BOTTOM_RIGHT
    }

    /** Outputs of the allocating forward: {@code o} and the fp32 log-sum-exp. */
    public record Outputs(Tensor o, Tensor lse) implements AutoCloseable {
        /** Closes both tensors. */
        @Override
        public void close() {
            LayerNorm.closeAll(o, lse);
        }
    }

    /** Gradients of the allocating backward. */
    public record Gradients(Tensor dq, Tensor dk, Tensor dv) implements AutoCloseable {
        /** Closes every tensor. */
        @Override
        public void close() {
            LayerNorm.closeAll(dq, dk, dv);
        }
    }

    private final CausalMask mask;
    private final float scale;

    private Attention(CausalMask mask, float scale) {
        if (mask == null) {
            throw new IllegalArgumentException("mask: must not be null (use CausalMask.NONE)");
        }
        if (!Float.isNaN(scale) && !Float.isFinite(scale)) {
            throw new IllegalArgumentException("scale: expected a finite value (or NaN for 1/sqrt(d)), got " + scale);
        }
        this.mask = mask;
        this.scale = scale;
    }

    /** Attention with the given mask and the default scale {@code 1/sqrt(d)}. */
    public static Attention of(CausalMask mask) {
        return new Attention(mask, Float.NaN);
    }

    /** Attention without a mask and with the default scale {@code 1/sqrt(d)}. */
    public static Attention create() {
        return of(CausalMask.NONE);
    }

    /** The same attention with an explicit softmax scale. */
    public Attention withScale(float scale) {
        if (!Float.isFinite(scale)) {
            throw new IllegalArgumentException("scale: expected a finite value, got " + scale);
        }
        return new Attention(mask, scale);
    }

    /** The causal mask. */
    public CausalMask mask() {
        return mask;
    }

    /** The scale applied to {@code Q K^T} for head dimension {@code headDim}. */
    public float scaleFor(int headDim) {
        return Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(headDim)) : scale;
    }

    /** Queues the forward pass, writing {@code o} and {@code lse}. */
    public void forward(Stream stream, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse) {
        AttentionProblem p = problemOf(stream, q, k, v);
        checkLike(o, "o", q, "q");
        checkLse(lse, q, p);
        Checks.distinct(new Tensor[] {o, lse}, new String[] {"o", "lse"},
                new Tensor[] {q, k, v}, new String[] {"q", "k", "v"});
        Checks.implementation(q.device()).attentionKernels().forward(stream, p, q, k, v, o, lse);
    }

    /** Allocates {@code o} and {@code lse} on {@code q}'s device and queues the forward pass. */
    public Outputs forward(Stream stream, Tensor q, Tensor k, Tensor v) {
        // validated before allocating, so that e.g. an unsupported dtype is blamed on q, not on allocate()
        problemOf(stream, q, k, v);
        Device d = q.device();
        Tensor o = null;
        Tensor lse = null;
        try {
            o = d.allocate(q.dtype(), q.shape());
            lse = d.allocate(DType.FLOAT32, lseShape(q.shape()));
            forward(stream, q, k, v, o, lse);
            return new Outputs(o, lse);
        } catch (RuntimeException e) {
            LayerNorm.closeAll(o, lse);
            throw e;
        }
    }

    /**
     * Queues the backward pass: from {@code dO} and the forward's {@code o} and {@code lse}, writes
     * {@code dq}, {@code dk} and {@code dv} (key/value gradients summed over the query heads sharing them).
     */
    public void backward(Stream stream, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
                         Tensor dq, Tensor dk, Tensor dv) {
        AttentionProblem p = problemOf(stream, q, k, v);
        checkLike(o, "o", q, "q");
        checkLse(lse, q, p);
        checkLike(dO, "dO", q, "q");
        checkLike(dq, "dq", q, "q");
        checkLike(dk, "dk", k, "k");
        checkLike(dv, "dv", v, "v");
        Checks.distinct(new Tensor[] {dq, dk, dv}, new String[] {"dq", "dk", "dv"},
                new Tensor[] {q, k, v, o, lse, dO}, new String[] {"q", "k", "v", "o", "lse", "dO"});
        Checks.implementation(q.device()).attentionKernels().backward(stream, p, q, k, v, o, lse, dO, dq, dk, dv);
    }

    /** Allocates the gradients and queues the backward pass. */
    public Gradients backward(Stream stream, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO) {
        problemOf(stream, q, k, v);
        Device d = q.device();
        Tensor dq = null;
        Tensor dk = null;
        Tensor dv = null;
        try {
            dq = d.allocate(q.dtype(), q.shape());
            dk = d.allocate(k.dtype(), k.shape());
            dv = d.allocate(v.dtype(), v.shape());
            backward(stream, q, k, v, o, lse, dO, dq, dk, dv);
            return new Gradients(dq, dk, dv);
        } catch (RuntimeException e) {
            LayerNorm.closeAll(dq, dk, dv);
            throw e;
        }
    }

    /**
     * The problem this attention poses for {@code q} of shape {@code [B, Hq, Nq, d]} and {@code k}/{@code v} of
     * shape {@code [B, Hkv, Nk, d]}.
     *
     * @throws IllegalArgumentException naming the argument when the shapes do not fit
     */
    public AttentionProblem problem(int[] qShape, int[] kShape, DType dtype) {
        if (qShape == null || qShape.length != 4) {
            throw new IllegalArgumentException("q: expected rank 4 ([B, Hq, Nq, d]), got "
                    + (qShape == null ? "null" : "rank " + qShape.length));
        }
        if (kShape == null || kShape.length != 4) {
            throw new IllegalArgumentException("k: expected rank 4 ([B, Hkv, Nk, d]), got "
                    + (kShape == null ? "null" : "rank " + kShape.length));
        }
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: must not be null");
        }
        return problemOf(qShape, kShape, dtype);
    }

    private AttentionProblem problemOf(Stream stream, Tensor q, Tensor k, Tensor v) {
        Checks.present(q, "q");
        Checks.rank(q, "q", 4, "[B, Hq, Nq, d]");
        Checks.supported(q, "q");
        Device d = q.device();
        Checks.stream(stream, d);
        Checks.present(k, "k");
        Checks.sameDevice(k, "k", d, "q");
        Checks.rank(k, "k", 4, "[B, Hkv, Nk, d]");
        Checks.dtype(k, "k", q.dtype(), "same as q");
        Checks.present(v, "v");
        Checks.sameDevice(v, "v", d, "q");
        Checks.rank(v, "v", 4, "[B, Hkv, Nk, d]");
        Checks.dtype(v, "v", q.dtype(), "same as q");
        AttentionProblem p = problemOf(q.shape(), k.shape(), q.dtype());
        Checks.shape(v, "v", k.shape(), "same as k");
        return p;
    }

    private AttentionProblem problemOf(int[] qs, int[] ks, DType dtype) {
        int b = qs[0];
        int hq = qs[1];
        int nq = qs[2];
        int hd = qs[3];
        int hkv = ks[1];
        int nk = ks[2];
        if (hd < 1) {
            throw new IllegalArgumentException("q: expected head dimension d >= 1, got " + hd);
        }
        if (ks[0] != b) {
            throw new IllegalArgumentException("k: expected batch " + b + " (same as q), got " + ks[0]);
        }
        if (ks[3] != hd) {
            throw new IllegalArgumentException("k: expected head dimension " + hd + " (same as q), got " + ks[3]);
        }
        if (hkv < 1 || hq % hkv != 0) {
            throw new IllegalArgumentException("k: key/value head count " + hkv
                    + " must be >= 1 and divide q's head count " + hq);
        }
        return new AttentionProblem(b, hq, hkv, nq, nk, hd, scaleFor(hd), mask, dtype);
    }

    private static void checkLike(Tensor t, String name, Tensor like, String likeName) {
        Checks.present(t, name);
        Checks.sameDevice(t, name, like.device(), likeName);
        Checks.dtype(t, name, like.dtype(), "same as " + likeName);
        Checks.shape(t, name, like.shape(), "same as " + likeName);
    }

    private static void checkLse(Tensor lse, Tensor q, AttentionProblem p) {
        Checks.present(lse, "lse");
        Checks.sameDevice(lse, "lse", q.device(), "q");
        Checks.dtype(lse, "lse", DType.FLOAT32, "the log-sum-exp is always float32");
        Checks.shape(lse, "lse", lseShape(q.shape()), "[B, Hq, Nq]");
    }

    private static int[] lseShape(int[] qShape) {
        if (qShape.length != 4) {
            throw new IllegalArgumentException("q: expected rank 4 ([B, Hq, Nq, d]), got rank " + qShape.length);
        }
        return new int[] {qShape[0], qShape[1], qShape[2]};
    }

    @Override
    public String toString() {
        return "Attention(mask=" + mask + ", scale=" + (Float.isNaN(scale) ? "1/sqrt(d)" : scale) + ")";
    }
}
