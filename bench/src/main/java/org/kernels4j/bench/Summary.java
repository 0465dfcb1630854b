package org.kernels4j.bench;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.kernels4j.DType;

/**
 * One run's figures per kernels4j benchmark: time, rate (TFLOP/s, or GB/s for layer norm), percent of the
 * measured roofline (CPU backends, against the copy and FMA ceilings of the same run), and each peer's time
 * with the ratio peer/ours (above 1: kernels4j is faster).
 */
final class Summary {

    /** The peers, in table order. */
    static final List<String> PEERS = List.of("torch", "ort");

    /**
     * One row: kernels4j's figure (null where only peers ran) and the peers' figures for the same problem,
     * direction, backend and dtype (PyTorch and ONNX Runtime on the CPU, or a PyTorch baseline on CUDA merged
     * in with {@code bench --include}).
     */
    record Row(String problem, String direction, String backend, String dtype, Measurement ours,
               Map<String, Measurement> peers, double rate, String rateUnit, double roofPercent) {

        /** peer time / our time, or NaN where either is missing. */
        double ratio(String peer) {
            Measurement m = peers.get(peer);
            return m == null || ours == null ? Double.NaN : m.mean() / ours.mean();
        }
    }

    /**
     * The ceilings of a run, from their fastest iteration: copy bandwidth in GB/s and FMA peak in GFLOP/s, NaN
     * where not measured.
     */
    record Roof(double copyGBps, double fmaGflops) {
        static Roof of(RunRecord run) {
            double copyBytes = run.meta().work().getOrDefault("ceiling/copy", Ceilings.COPY_BYTES);
            double fmaFlops = run.meta().work().getOrDefault("ceiling/fma", Double.NaN);
            // a bare JMH file has no metadata: its copy size is this build's; its FMA work is unknown
            double copy = run.ceiling("copy").map(m -> copyBytes / (m.min() * 1e-3) / 1e9).orElse(Double.NaN);
            double fma = run.ceiling("fma").map(m -> fmaFlops / (m.min() * 1e-3) / 1e9).orElse(Double.NaN);
            return new Roof(copy, fma);
        }
    }

    private Summary() {
    }

    /** The rows of a run, in problem-set order, forward before backward. */
    static List<Row> rows(RunRecord run) {
        Map<String, Measurement> all = run.byKey();
        Roof ceil = Roof.of(run);
        Map<String, Row> rows = new LinkedHashMap<>();
        for (BenchProblem p : ProblemSet.all()) {
            for (Direction d : Direction.values()) {
                for (Measurement m : run.measurements()) {
                    if (!m.impl().equals(Measurement.OURS) || !m.problem().equals(p.name())
                            || !m.direction().equals(d.label())) {
                        continue;
                    }
                    Map<String, Measurement> peers = new LinkedHashMap<>();
                    for (String peer : PEERS) {
                        Measurement pm = all.get(peer + "/" + m.backend() + "/" + m.dtype() + "/" + p.name() + "/"
                                + d.label());
                        if (pm != null) {
                            peers.put(peer, pm);
                        }
                    }
                    rows.put(m.key(), row(p, d, m.backend(), m.dtype(), m, peers, ceil));
                }
                // peers measured without kernels4j's figure (a filtered run) still get a row
                Map<String, Map<String, Measurement>> orphans = new LinkedHashMap<>();
                for (Measurement pm : run.measurements()) {
                    if (PEERS.contains(pm.impl()) && pm.problem().equals(p.name()) && pm.direction().equals(d.label())
                            && !all.containsKey(pm.oursKey())) {
                        orphans.computeIfAbsent(pm.backend() + "/" + pm.dtype(), x -> new LinkedHashMap<>())
                                .put(pm.impl(), pm);
                    }
                }
                for (Map.Entry<String, Map<String, Measurement>> o : orphans.entrySet()) {
                    String[] bd = o.getKey().split("/");
                    rows.put("peers/" + o.getKey() + "/" + p.name() + "/" + d.label(),
                            row(p, d, bd[0], bd[1], null, o.getValue(), ceil));
                }
            }
        }
        return new ArrayList<>(rows.values());
    }

    private static Row row(BenchProblem p, Direction d, String backend, String dtype, Measurement ours,
                           Map<String, Measurement> peers, Roof ceil) {
        double rate = Double.NaN;
        double roof = Double.NaN;
        String unit = p.bandwidthBound() ? "GB/s" : "TFLOP/s";
        if (ours != null) {
            double seconds = ours.mean() * 1e-3;
            boolean cpuLike = backend.equals("cpu") || backend.equals("opencl");
            if (p.bandwidthBound()) {
                rate = p.bytes(d, DType.parse(dtype)) / seconds / 1e9;
                roof = cpuLike ? 100 * rate / ceil.copyGBps() : Double.NaN;
            } else {
                rate = p.flops(d) / seconds / 1e12;
                roof = cpuLike ? 100 * rate * 1e3 / ceil.fmaGflops() : Double.NaN;
            }
        }
        return new Row(p.name(), d.label(), backend, dtype, ours, peers, rate, unit, roof);
    }

    /** Prints the ratio table: problem, direction, backend, dtype, ours, rate, % roofline, each peer and ratio. */
    static void print(RunRecord run, PrintWriter out) {
        Roof c = Roof.of(run);
        out.printf(Locale.ROOT, "ceilings (%d threads): copy %s GB/s, FMA peak %s GFLOP/s%n", run.meta().threads(),
                fmt(c.copyGBps(), 1), fmt(c.fmaGflops(), 1));
        List<String> header = new ArrayList<>(List.of("problem", "dir", "backend", "dtype", "ours ms", "rate",
                "% roof"));
        for (String peer : PEERS) {
            header.add(peer + " ms");
            header.add(peer + "/ours");
        }
        List<List<String>> cells = new ArrayList<>();
        for (Row r : rows(run)) {
            List<String> l = new ArrayList<>(List.of(r.problem(), r.direction(), r.backend(), r.dtype(),
                    r.ours() == null ? "-" : ms(r.ours()),
                    Double.isNaN(r.rate()) ? "-" : fmt(r.rate(), r.rateUnit().equals("GB/s") ? 1 : 3) + " " + r.rateUnit(),
                    Double.isNaN(r.roofPercent()) ? "-" : fmt(r.roofPercent(), 0) + "%"));
            for (String peer : PEERS) {
                Measurement pm = r.peers().get(peer);
                l.add(pm == null ? "-" : ms(pm));
                l.add(Double.isNaN(r.ratio(peer)) ? "-" : fmt(r.ratio(peer), 2) + "x");
            }
            cells.add(l);
        }
        table(out, header, cells);
    }

    static String ms(Measurement m) {
        return fmt(m.mean(), m.mean() < 10 ? 3 : 1) + (Double.isNaN(m.errorMs()) || m.errorMs() == 0 ? ""
                : " ±" + fmt(m.errorMs(), m.errorMs() < 10 ? 3 : 1));
    }

    static String fmt(double v, int decimals) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    /** A plain-text table with left-aligned columns. */
    static void table(PrintWriter out, List<String> header, List<List<String>> rows) {
        int[] w = new int[header.size()];
        for (int i = 0; i < w.length; i++) {
            w[i] = header.get(i).length();
            for (List<String> r : rows) {
                w[i] = Math.max(w[i], r.get(i).length());
            }
        }
        line(out, header, w);
        StringBuilder rule = new StringBuilder();
        for (int i = 0; i < w.length; i++) {
            rule.append(i == 0 ? "" : "  ").append("-".repeat(w[i]));
        }
        out.println(rule);
        for (List<String> r : rows) {
            line(out, r, w);
        }
        out.flush();
    }

    private static void line(PrintWriter out, List<String> cells, int[] w) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < w.length; i++) {
            String c = cells.get(i);
            sb.append(i == 0 ? "" : "  ").append(c);
            if (i < w.length - 1) {
                sb.append(" ".repeat(w[i] - c.length()));
            }
        }
        out.println(sb.toString().stripTrailing());
    }
}
