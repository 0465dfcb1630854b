package org.kernels4j.bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The dashboard: one self-contained HTML file (uPlot and its stylesheet inlined from the webjar, the data as
 * embedded JSON, no network needed to view) with the regression table, each machine's newest run as a table
 * (time, rate, percent of the roofline, peers and ratios) and one chart per benchmark of its time over the
 * runs (commits), with the peers' times and the peer/ours ratios on a second axis.
 */
final class Dashboard {

    private static final String UPLOT = "META-INF/resources/webjars/uplot/" + Versions.of("uplot") + "/dist/";
    private static final DateTimeFormatter DAY = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm").withZone(ZoneOffset.UTC);
    private static final ObjectMapper JSON = new ObjectMapper();

    private Dashboard() {
    }

    /** The dashboard of a history as HTML text. */
    static String render(History h, List<History.Finding> findings) {
        StringBuilder b = new StringBuilder(200_000);
        b.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n")
                .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
                .append("<title>kernels4j benchmarks</title>\n<style>\n").append(resource(UPLOT + "uPlot.min.css"))
                .append('\n').append(CSS).append("</style>\n<script>\n")
                .append(resource(UPLOT + "uPlot.iife.min.js").replace("</script", "<\\/script"))
                .append("\n</script>\n</head>\n<body>\n<h1>kernels4j benchmarks</h1>\n");
        long runs = h.machines().stream().mapToLong(m -> h.runs(m).size()).sum();
        b.append("<p class=\"meta\">").append(runs).append(" run(s) on ").append(h.machines().size())
                .append(" machine(s); generated ").append(esc(DAY.format(Instant.now()))).append(" UTC. ")
                .append("Times are JMH averages per call (ms); ratio = peer time / kernels4j time (above 1: kernels4j is faster); ")
                .append("% roof = rate over the same run's measured copy bandwidth (layer norm) or FMA peak (conv, attention).</p>\n");
        regressions(b, findings);
        List<Map<String, Object>> charts = new ArrayList<>();
        for (String machine : h.machines()) {
            machine(b, h, machine, findings, charts);
        }
        b.append("<script type=\"application/json\" id=\"chart-data\">")
                .append(json(charts).replace("<", "\\u003c")).append("</script>\n<script>\n").append(SCRIPT)
                .append("</script>\n</body></html>\n");
        return b.toString();
    }

    private static void regressions(StringBuilder b, List<History.Finding> findings) {
        b.append("<h2>Regressions</h2>\n");
        List<History.Finding> flagged = findings.stream()
                .filter(f -> f.verdict().status() == RegressionCheck.Status.REGRESSION
                        || f.verdict().status() == RegressionCheck.Status.IMPROVEMENT).toList();
        long checked = findings.stream().filter(f -> f.verdict().status() != RegressionCheck.Status.NO_HISTORY).count();
        b.append("<p class=\"meta\">Newest run of each machine against up to ").append(RegressionCheck.BASELINE_RUNS)
                .append(" earlier runs: Welch's t-test on the iteration times and a prediction bound over the earlier runs' means, both one-sided at ")
                .append(RegressionCheck.ALPHA).append(". ").append(checked).append(" benchmark(s) had history.</p>\n");
        long unjudged = findings.stream().filter(f -> f.verdict().status() == RegressionCheck.Status.HOST_CHANGED).count();
        if (unjudged > 0) {
            b.append("<p id=\"host-changed\">").append(unjudged).append(" change(s) beyond the noise not judged: the")
                    .append(" newest run's ceilings (memory copy, FMA loop) moved by more than ")
                    .append(Summary.fmt(History.HOST_TOLERANCE, 2)).append("x against the runs before, so the machine,")
                    .append(" not the code, may have changed; rerun on a quiet host.</p>\n");
        }
        if (flagged.isEmpty()) {
            b.append("<p id=\"no-regressions\">No regression beyond the measured noise.</p>\n");
            return;
        }
        b.append("<table id=\"regressions\"><thead><tr><th>machine</th><th>benchmark</th><th>status</th><th>baseline ms</th>")
                .append("<th>newest ms</th><th>newest / baseline</th><th>interval</th><th>p</th><th>runs</th></tr></thead><tbody>\n");
        for (History.Finding f : flagged) {
            RegressionCheck.Verdict v = f.verdict();
            String cls = v.status() == RegressionCheck.Status.REGRESSION ? "bad" : "good";
            b.append("<tr class=\"").append(cls).append("\"><td>").append(esc(f.machine())).append("</td><td>")
                    .append(esc(f.key())).append("</td><td>").append(v.status().name().toLowerCase()).append("</td><td>")
                    .append(Summary.fmt(v.baselineMs(), 3)).append("</td><td>").append(Summary.fmt(v.newestMs(), 3))
                    .append("</td><td>").append(Summary.fmt(v.ratio(), 3)).append("</td><td>[")
                    .append(Summary.fmt(v.ratioLow(), 3)).append(", ").append(Summary.fmt(v.ratioHigh(), 3))
                    .append("]</td><td>").append(String.format(java.util.Locale.ROOT, "%.2g", v.pValue()))
                    .append("</td><td>").append(v.baselineRuns()).append("</td></tr>\n");
        }
        b.append("</tbody></table>\n");
    }

    private static void machine(StringBuilder b, History h, String machine, List<History.Finding> findings,
                                List<Map<String, Object>> charts) {
        List<RunRecord> runs = h.runs(machine);
        RunRecord newest = runs.get(runs.size() - 1);
        RunMetadata m = newest.meta();
        Summary.Roof roof = Summary.Roof.of(newest);
        b.append("<section class=\"machine\"><h2>").append(esc(machine)).append("</h2>\n<p class=\"meta\">")
                .append(runs.size()).append(" run(s). Newest: ").append(esc(DAY.format(m.instant()))).append(" UTC, commit ")
                .append(esc(m.shortCommit())).append(m.dirty() ? " (uncommitted changes)" : "").append(m.quick() ? ", quick" : "")
                .append("; ").append(esc(m.cpuModel())).append(", ").append(m.cores()).append(" cores, ")
                .append(m.threads()).append(" threads; ").append(esc(m.jdk()));
        if (!m.gpus().isEmpty()) {
            b.append("; GPU ").append(esc(String.join(", ", m.gpus())));
        }
        b.append(". Ceilings: copy ").append(Summary.fmt(roof.copyGBps(), 1)).append(" GB/s, FMA peak ")
                .append(Summary.fmt(roof.fmaGflops(), 1)).append(" GFLOP/s.");
        for (Map.Entry<String, String> p : m.peers().entrySet()) {
            b.append(" ").append(esc(p.getKey())).append(": ").append(esc(p.getValue())).append('.');
        }
        b.append("</p>\n<h3>Newest run</h3>\n<table class=\"latest\"><thead><tr><th>problem</th><th>direction</th>")
                .append("<th>backend</th><th>dtype</th><th>ours ms</th><th>rate</th><th>% roof</th>");
        for (String peer : Summary.PEERS) {
            b.append("<th>").append(peer).append(" ms</th><th>").append(peer).append("/ours</th>");
        }
        b.append("<th>vs history</th></tr></thead><tbody>\n");
        Map<String, RegressionCheck.Verdict> verdicts = new LinkedHashMap<>();
        for (History.Finding f : findings) {
            if (f.machine().equals(machine)) {
                verdicts.put(f.key(), f.verdict());
            }
        }
        for (Summary.Row r : Summary.rows(newest)) {
            b.append("<tr><td title=\"").append(esc(ProblemSet.byName(r.problem()).describe())).append("\">")
                    .append(esc(r.problem())).append("</td><td>").append(r.direction()).append("</td><td>")
                    .append(esc(r.backend())).append("</td><td>").append(esc(r.dtype())).append("</td><td>")
                    .append(r.ours() == null ? "-" : esc(Summary.ms(r.ours()))).append("</td><td>")
                    .append(Double.isNaN(r.rate()) ? "-" : Summary.fmt(r.rate(), r.rateUnit().equals("GB/s") ? 1 : 3)
                            + " " + r.rateUnit()).append("</td><td>")
                    .append(Double.isNaN(r.roofPercent()) ? "-" : Summary.fmt(r.roofPercent(), 0) + "%").append("</td>");
            for (String peer : Summary.PEERS) {
                Measurement pm = r.peers().get(peer);
                double ratio = r.ratio(peer);
                b.append("<td>").append(pm == null ? "-" : esc(Summary.ms(pm))).append("</td><td class=\"")
                        .append(Double.isNaN(ratio) ? "" : ratio >= 1 ? "good" : "bad").append("\">")
                        .append(Double.isNaN(ratio) ? "-" : Summary.fmt(ratio, 2) + "x").append("</td>");
            }
            RegressionCheck.Verdict v = r.ours() == null ? null : verdicts.get(r.ours().key());
            b.append("<td>").append(v == null ? "-" : v.status() == RegressionCheck.Status.NO_HISTORY ? "new"
                    : v.status().name().toLowerCase().replace('_', ' ') + " (" + Summary.fmt(v.ratio(), 2) + "x)")
                    .append("</td></tr>\n");
        }
        b.append("</tbody></table>\n<h3>Over the runs</h3>\n<div class=\"charts\">\n");
        for (Map<String, Object> c : charts(machine, runs)) {
            b.append("<figure class=\"chart\" data-chart=\"").append(charts.size()).append("\"><figcaption>")
                    .append(esc((String) c.get("title"))).append("</figcaption></figure>\n");
            charts.add(c);
        }
        b.append("</div></section>\n");
    }

    /** One chart per kernels4j benchmark (peers beside it on the CPU set), one for peers alone, one for the ceilings. */
    private static List<Map<String, Object>> charts(String machine, List<RunRecord> runs) {
        List<String> labels = new ArrayList<>();
        List<Map<String, Measurement>> byRun = new ArrayList<>();
        for (RunRecord r : runs) {
            labels.add(r.meta().shortCommit().substring(0, Math.min(7, r.meta().shortCommit().length())) + " "
                    + DAY.format(r.meta().instant()).substring(5, 10));
            byRun.add(r.byKey());
        }
        Map<String, Boolean> seen = new LinkedHashMap<>();
        for (Map<String, Measurement> run : byRun) {
            for (Measurement m : run.values()) {
                seen.put(m.key(), true);
            }
        }
        List<Map<String, Object>> charts = new ArrayList<>();
        for (String key : seen.keySet()) {
            String[] k = key.split("/");
            String impl = k[0];
            if (impl.equals(Measurement.CEILING)) {
                continue;
            }
            boolean peerOnly = !impl.equals(Measurement.OURS);
            String tail = "/" + k[1] + "/" + k[2] + "/" + k[3] + "/" + k[4];
            if (peerOnly && seen.containsKey(Measurement.OURS + tail)) {
                continue;
            }
            if (peerOnly && !impl.equals(Summary.PEERS.get(0)) && seen.containsKey(Summary.PEERS.get(0) + tail)) {
                continue;
            }
            List<Map<String, Object>> series = new ArrayList<>();
            String ours = peerOnly ? null : key;
            if (ours != null) {
                series.add(series("ours (" + k[1] + " " + k[2] + ")", "ms", values(byRun, ours)));
            }
            for (String peer : Summary.PEERS) {
                String pk = peer + tail;
                if (!seen.containsKey(pk)) {
                    continue;
                }
                series.add(series(peer, "ms", values(byRun, pk)));
                if (ours != null) {
                    series.add(series(peer + "/ours", "ratio", ratios(byRun, pk, ours)));
                }
            }
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("title", k[3] + " " + k[4] + " · " + k[1] + " " + k[2] + (peerOnly ? " (peers only)" : ""));
            c.put("machine", machine);
            c.put("labels", labels);
            c.put("series", series);
            charts.add(c);
        }
        List<Map<String, Object>> ceil = new ArrayList<>();
        List<Double> copy = new ArrayList<>();
        List<Double> fma = new ArrayList<>();
        for (RunRecord r : runs) {
            Summary.Roof roof = Summary.Roof.of(r);
            copy.add(Double.isNaN(roof.copyGBps()) ? null : roof.copyGBps());
            fma.add(Double.isNaN(roof.fmaGflops()) ? null : roof.fmaGflops());
        }
        if (copy.stream().anyMatch(x -> x != null) || fma.stream().anyMatch(x -> x != null)) {
            ceil.add(series("copy GB/s", "ms", copy));
            ceil.add(series("FMA GFLOP/s", "ratio", fma));
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("title", "ceilings: copy bandwidth (left, GB/s) and FMA peak (right, GFLOP/s)");
            c.put("machine", machine);
            c.put("labels", labels);
            c.put("series", ceil);
            c.put("axes", List.of("GB/s", "GFLOP/s"));
            charts.add(c);
        }
        return charts;
    }

    private static Map<String, Object> series(String name, String scale, List<Double> values) {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("name", name);
        s.put("scale", scale);
        s.put("values", values);
        return s;
    }

    private static List<Double> values(List<Map<String, Measurement>> byRun, String key) {
        List<Double> v = new ArrayList<>();
        for (Map<String, Measurement> run : byRun) {
            Measurement m = run.get(key);
            v.add(m == null ? null : m.mean());
        }
        return v;
    }

    private static List<Double> ratios(List<Map<String, Measurement>> byRun, String peerKey, String oursKey) {
        List<Double> v = new ArrayList<>();
        for (Map<String, Measurement> run : byRun) {
            Measurement p = run.get(peerKey);
            Measurement o = run.get(oursKey);
            v.add(p == null || o == null ? null : p.mean() / o.mean());
        }
        return v;
    }

    private static String json(Object o) {
        try {
            return JSON.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("serialising the chart data: " + e.getMessage(), e);
        }
    }

    private static String resource(String name) {
        try (InputStream in = Dashboard.class.getClassLoader().getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException(name + " is not on the class path (the uplot webjar is a dependency of kernels4j-bench)");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    private static final String CSS = """
            body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; }
            h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; } h3 { font-size: 15px; }
            .meta { color: #555; max-width: 1200px; }
            table { border-collapse: collapse; margin: 8px 0 16px; }
            th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
            th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
            td.good { color: #17702a; } td.bad { color: #b3261e; font-weight: 600; }
            tr.bad td { background: #fdecea; } tr.good td { background: #eaf6ec; }
            .charts { display: flex; flex-wrap: wrap; gap: 12px; }
            figure.chart { margin: 0; border: 1px solid #e4e4e4; padding: 6px; width: 480px; }
            figcaption { font-weight: 600; font-size: 13px; margin-bottom: 4px; }
            """;

    private static final String SCRIPT = """
            (function () {
              var data = JSON.parse(document.getElementById('chart-data').textContent);
              var colors = ['#1f5fbf', '#d9730d', '#2e9e44', '#9b3fb5', '#b3261e', '#5b6770'];
              var drawn = 0;
              document.querySelectorAll('figure.chart').forEach(function (fig) {
                var c = data[Number(fig.getAttribute('data-chart'))];
                var xs = c.labels.map(function (_, i) { return i; });
                var series = [{ label: 'run' }];
                var cols = [xs];
                c.series.forEach(function (s, i) {
                  series.push({ label: s.name, scale: s.scale, stroke: colors[i % colors.length], width: 2,
                    dash: s.scale === 'ratio' && !c.axes ? [6, 4] : undefined, spanGaps: true,
                    points: { show: true, size: 6 },
                    value: function (u, v) { return v == null ? '-' : v.toPrecision(4); } });
                  cols.push(s.values);
                });
                var axisNames = c.axes || ['ms', 'peer / ours'];
                var opts = {
                  width: 468, height: 240, series: series,
                  scales: { x: { time: false, auto: false, range: [-0.5, xs.length - 0.5] },
                            ms: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } },
                            ratio: { range: function (u, lo, hi) { return [0, Math.max(hi * 1.1, 1.2)]; } } },
                  axes: [
                    { incrs: [1, 2, 5, 10, 20, 50, 100], size: 40,
                      values: function (u, splits) { return splits.map(function (i) { return c.labels[i] || ''; }); } }
                  ],
                  legend: { show: true }
                };
                var used = c.series.map(function (s) { return s.scale; });
                if (used.indexOf('ms') >= 0) { opts.axes.push({ scale: 'ms', label: axisNames[0], size: 60 }); }
                if (used.indexOf('ratio') >= 0) {
                  opts.axes.push({ scale: 'ratio', side: 1, label: axisNames[1], grid: { show: false }, size: 60 });
                }
                new uPlot(opts, cols, fig);
                drawn++;
              });
              document.body.setAttribute('data-charts-drawn', String(drawn));
            })();
            """;
}
