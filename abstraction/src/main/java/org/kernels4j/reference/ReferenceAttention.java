package org.kernels4j.reference;

import org.kernels4j.spi.AttentionProblem;

/**
 * Plain float64 scaled dot-product attention, forward and backward, exactly as
 * {@link org.kernels4j.Attention} documents it: {@code O = softmax(scale * Q K^T + mask) V}, the natural-log
 * log-sum-exp per query row, masks as {@link AttentionProblem#visibleKeys(int)}, grouped-query heads (query
 * head {@code h} reads key/value head {@code h / groupSize}), and a row that sees no key giving
 * {@code O = 0}, {@code lse = -inf} and zero gradients.
 *
 * <p>Layouts: {@code q}, {@code o}, {@code dO}, {@code dq} are {@code [B, Hq, Nq, d]}; {@code k}, {@code v},
 * {@code dk}, {@code dv} {@code [B, Hkv, Nk, d]}; {@code lse} {@code [B, Hq, Nq]}. The scores of one row are
 * computed in full (no online softmax), which is what makes this a reference.
 */
public final class ReferenceAttention {

    /**
     * Forward results.
     *
     * @param o   the attention output, {@code [B, Hq, Nq, d]}
     * @param lse natural log of each row's sum of {@code exp(scale * q.k)} over visible keys,
     *            {@code [B, Hq, Nq]}; {@code -inf} for a row that sees no key
     */
    public record Forward(double[] o, double[] lse) {
    }

    /**
     * Backward results.
     *
     * @param dq gradient with respect to q, {@code [B, Hq, Nq, d]}
     * @param dk gradient with respect to k, summed over the query heads sharing each key head
     * @param dv gradient with respect to v, summed likewise
     */
    public record Backward(double[] dq, double[] dk, double[] dv) {
    }

    private ReferenceAttention() {
    }

    /** The forward pass. */
    public static Forward forward(AttentionProblem p, double[] q, double[] k, double[] v) {
        checkInputs(p, q, k, v);
        int d = p.headDim();
        double[] o = new double[Arrays64.size("o", p.batch(), p.heads(), p.queries(), d)];
        double[] lse = new double[Arrays64.size("lse", p.batch(), p.heads(), p.queries())];
        double[] s = new double[p.keys()];
        for (int b = 0; b < p.batch(); b++) {
            for (int h = 0; h < p.heads(); h++) {
                int kvBase = kvRow(p, b, h, 0);
                for (int i = 0; i < p.queries(); i++) {
                    int row = (b * p.heads() + h) * p.queries() + i;
                    int visible = p.visibleKeys(i);
                    if (visible == 0) {
                        lse[row] = Double.NEGATIVE_INFINITY;
                        continue;
                    }
                    double l = scores(p, q, row * d, k, kvBase, visible, s);
                    lse[row] = l;
                    for (int j = 0; j < visible; j++) {
                        double pj = Math.exp(s[j] - l);
                        for (int t = 0; t < d; t++) {
                            o[row * d + t] += pj * v[(kvBase + j) * d + t];
                        }
                    }
                }
            }
        }
        return new Forward(o, lse);
    }

    /**
     * The backward pass from {@code dO}; the softmax is recomputed from {@code q} and {@code k} in float64:
     * {@code dV = P^T dO}, {@code dP = dO V^T}, {@code dS = P * (dP - rowsum(dP * P))},
     * {@code dQ = scale dS K}, {@code dK = scale dS^T Q}.
     */
    public static Backward backward(AttentionProblem p, double[] q, double[] k, double[] v, double[] dO) {
        checkInputs(p, q, k, v);
        int d = p.headDim();
        Arrays64.length(dO, q.length, "dO");
        double[] dq = new double[q.length];
        double[] dk = new double[k.length];
        double[] dv = new double[v.length];
        double[] s = new double[p.keys()];
        double[] dp = new double[p.keys()];
        for (int b = 0; b < p.batch(); b++) {
            for (int h = 0; h < p.heads(); h++) {
                int kvBase = kvRow(p, b, h, 0);
                for (int i = 0; i < p.queries(); i++) {
                    int row = (b * p.heads() + h) * p.queries() + i;
                    int visible = p.visibleKeys(i);
                    if (visible == 0) {
                        continue;
                    }
                    double l = scores(p, q, row * d, k, kvBase, visible, s);
                    // s becomes P; D = sum_j P_j dP_j equals dO . O.
                    double rowD = 0;
                    for (int j = 0; j < visible; j++) {
                        s[j] = Math.exp(s[j] - l);
                        double acc = 0;
                        for (int t = 0; t < d; t++) {
                            acc += dO[row * d + t] * v[(kvBase + j) * d + t];
                        }
                        dp[j] = acc;
                        rowD += s[j] * acc;
                    }
                    for (int j = 0; j < visible; j++) {
                        double ds = s[j] * (dp[j] - rowD) * p.scale();
                        for (int t = 0; t < d; t++) {
                            dq[row * d + t] += ds * k[(kvBase + j) * d + t];
                            dk[(kvBase + j) * d + t] += ds * q[row * d + t];
                            dv[(kvBase + j) * d + t] += s[j] * dO[row * d + t];
                        }
                    }
                }
            }
        }
        return new Backward(dq, dk, dv);
    }

    /** Fills {@code s[0..visible)} with the scaled scores of one query row; returns the row's log-sum-exp. */
    private static double scores(AttentionProblem p, double[] q, int qOff, double[] k, int kvBase, int visible,
                                 double[] s) {
        int d = p.headDim();
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < visible; j++) {
            double dot = 0;
            for (int t = 0; t < d; t++) {
                dot += q[qOff + t] * k[(kvBase + j) * d + t];
            }
            s[j] = p.scale() * dot;
            max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < visible; j++) {
            sum += Math.exp(s[j] - max);
        }
        return max + Math.log(sum);
    }

    /** Index of key row {@code j} of the key/value head that query head {@code h} reads. */
    private static int kvRow(AttentionProblem p, int b, int h, int j) {
        return (b * p.kvHeads() + h / p.groupSize()) * p.keys() + j;
    }

    private static void checkInputs(AttentionProblem p, double[] q, double[] k, double[] v) {
        Arrays64.notNull(p, "p");
        Arrays64.length(q, (long) p.batch() * p.heads() * p.queries() * p.headDim(), "q");
        Arrays64.length(k, (long) p.batch() * p.kvHeads() * p.keys() * p.headDim(), "k");
        Arrays64.length(v, k.length, "v");
    }
}
