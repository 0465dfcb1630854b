package org.kernels4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.kernels4j.Attention;
import org.kernels4j.DType;
import org.openjdk.jmh.annotations.Param;

/**
 * The problem catalog against {@code shared/benchmark-shapes.md} (names and shapes, read from the file where the
 * checkout has it beside), the JMH parameter lists against the catalog, the work counts against DESIGN.md's
 * formulas, and the plan of a run.
 */
class ProblemSetTest {

    private static final Pattern ROW = Pattern.compile("^\\|\\s*([A-Za-z][A-Za-z0-9-]*)\\s*\\|\\s*([^|]+?)\\s*\\|\\s*([^|]+?)\\s*\\|");

    static Optional<Path> shapesDoc() {
        return Stream.of("../../shared/benchmark-shapes.md", "../shared/benchmark-shapes.md", "shared/benchmark-shapes.md")
                .map(Path::of).filter(Files::isRegularFile).findFirst();
    }

    @Test
    void everyProblemOfTheShapesDocumentIsInTheCatalogWithItsShape() throws Exception {
        Optional<Path> doc = shapesDoc();
        if (doc.isEmpty()) {
            System.out.println("[ProblemSetTest] shared/benchmark-shapes.md not found beside the checkout; skipped");
            Assumptions.abort("shared/benchmark-shapes.md not found beside the checkout");
        }
        int checked = 0;
        for (String line : Files.readAllLines(doc.get(), StandardCharsets.UTF_8)) {
            Matcher m = ROW.matcher(line);
            if (!m.find() || m.group(1).equals("name")) {
                continue;
            }
            String name = m.group(1);
            String op = m.group(2);
            String shape = m.group(3);
            if (name.endsWith("-S")) {
                // attn-fa-d64-S: one problem per sequence length, causal and not
                for (String s : List.of("512", "1k", "2k", "4k", "8k", "16k")) {
                    for (String suffix : List.of("", "-causal")) {
                        BenchProblem p = ProblemSet.byName(name.substring(0, name.length() - 1) + s + suffix);
                        int seq = s.endsWith("k") ? Integer.parseInt(s.substring(0, s.length() - 1)) * 1024 : Integer.parseInt(s);
                        assertEquals(seq, p.seq());
                        assertEquals(16384 / seq, p.batch(), p.name());
                        assertEquals(2048, p.heads() * p.headDim(), p.name());
                        checked++;
                    }
                }
                continue;
            }
            BenchProblem p = ProblemSet.byName(name);
            if (op.startsWith("layer norm")) {
                Matcher x = Pattern.compile("x \\[(\\d+), (\\d+)\\]").matcher(shape);
                assertTrue(x.find(), shape);
                assertEquals(Integer.parseInt(x.group(1)), p.rows(), name);
                assertEquals(Integer.parseInt(x.group(2)), p.cols(), name);
            } else if (op.startsWith("conv2d")) {
                Matcher c = Pattern.compile("N=(\\d+) C=(\\d+) H=W=(\\d+) K=(\\d+) (\\d)×(\\d)").matcher(shape);
                assertTrue(c.find(), shape);
                assertEquals(List.of(c.group(1), c.group(2), c.group(3), c.group(4), c.group(5)),
                        Stream.of(p.n(), p.c(), p.h(), p.k(), p.r()).map(String::valueOf).toList(), name);
                assertEquals(number(shape, "stride (\\d+)", 1), p.stride(), name);
                assertEquals(number(shape, "pad (\\d+)", 0), p.pad(), name);
                assertEquals(number(shape, "groups=(\\d+)", 1), p.groups(), name);
                assertEquals(op.contains("NHWC") ? org.kernels4j.Conv2d.Format.NHWC : org.kernels4j.Conv2d.Format.NCHW,
                        p.format(), name);
            } else {
                assertEquals(number(shape, "B=(\\d+)", -1), p.batch(), name);
                assertEquals(number(shape, "H(?:q)?=(\\d+)", -1), p.heads(), name);
                assertEquals(number(shape, "Hkv=(\\d+)", p.heads()), p.kvHeads(), name);
                assertEquals(number(shape, "N=(\\d+)", -1), p.seq(), name);
                assertEquals(number(shape, "d=(\\d+)", -1), p.headDim(), name);
                boolean bothMasks = shape.contains("non-causal and causal");
                assertEquals(shape.contains("causal") && !bothMasks ? Attention.CausalMask.TOP_LEFT
                        : Attention.CausalMask.NONE, p.mask(), name);
                if (bothMasks) {
                    assertEquals(Attention.CausalMask.TOP_LEFT, ProblemSet.byName(name + "-causal").mask());
                }
            }
            checked++;
        }
        assertEquals(ProblemSet.all().size(), checked + 1, "every catalog problem is in the document (attn-1k-causal "
                + "is attn-1k's causal twin)");
    }

    private static int number(String s, String regex, int absent) {
        Matcher m = Pattern.compile(regex).matcher(s);
        return m.find() ? Integer.parseInt(m.group(1)) : absent;
    }

    @Test
    void theJmhParameterDefaultsAreTheCpuSet() throws Exception {
        List<String> cpu = ProblemSet.of(BenchProblem.Set.CPU).stream().map(BenchProblem::name).toList();
        for (Field f : List.of(Ours.class.getField("problem"), Torch.Inputs.class.getField("problem"),
                Ort.class.getField("problem"))) {
            assertEquals(cpu, List.of(f.getAnnotation(Param.class).value()), f.toString());
        }
    }

    @Test
    void workIsCountedAsDesignMdSays() {
        BenchProblem conv = ProblemSet.byName("conv-s2");
        double pass = 2.0 * 8 * 128 * 64 * 3 * 3 * 28 * 28;
        assertEquals(pass, conv.flops(Direction.FORWARD), 1);
        assertEquals(2 * pass, conv.flops(Direction.BACKWARD), 1);
        BenchProblem dw = ProblemSet.byName("conv-dw");
        assertEquals(2.0 * 8 * 256 * 1 * 9 * 28 * 28, dw.flops(Direction.FORWARD), 1);
        BenchProblem gqa = ProblemSet.byName("attn-gqa");
        double fwd = 4.0 * 2 * 16 * 2048 * 2048 * 128 / 2;
        assertEquals(fwd, gqa.flops(Direction.FORWARD), 1);
        assertEquals(2.5 * fwd, gqa.flops(Direction.BACKWARD), 1);
        assertEquals(4.0 * 4 * 8 * 1024 * 1024 * 64, ProblemSet.byName("attn-1k").flops(Direction.FORWARD), 1);
        BenchProblem ln = ProblemSet.byName("ln-8k-1k");
        double x = 8192.0 * 1024 * 4;
        assertEquals(2 * x + 2 * 1024 * 4 + 2 * 8192 * 4, ln.bytes(Direction.FORWARD, DType.FLOAT32), 1);
        assertEquals(3 * x + 3 * 1024 * 4 + 2 * 8192 * 4, ln.bytes(Direction.BACKWARD, DType.FLOAT32), 1);
        assertEquals(2 * x / 2 + 2 * 1024 * 2 + 2 * 8192 * 4, ln.bytes(Direction.FORWARD, DType.BFLOAT16), 1);
    }

    @Test
    void seedsAreFixedPerProblemAndDifferBetweenProblems() {
        BenchProblem a = ProblemSet.byName("ln-8k-1k");
        assertEquals(a.randomNormal(0, 16)[7], ProblemSet.byName("ln-8k-1k").randomNormal(0, 16)[7]);
        assertTrue(a.randomNormal(0, 16)[7] != a.randomNormal(1, 16)[7]);
        assertTrue(a.randomNormal(0, 16)[7] != ProblemSet.byName("ln-4k-4k").randomNormal(0, 16)[7]);
        float[] big = a.randomNormal(0, 100_000);
        double mean = 0;
        double sq = 0;
        for (float v : big) {
            mean += v;
            sq += v * v;
        }
        mean /= big.length;
        assertEquals(0, mean, 0.02);
        assertEquals(1, sq / big.length, 0.02);
    }

    @Test
    void theCpuPlanHasEveryProblemDirectionAndPeer() {
        Map<String, Set<DType>> cpu = Map.of("cpu", Set.of(DType.FLOAT32));
        List<BenchPlan.Item> plan = BenchPlan.of(cpu, true, true, List.of());
        Set<String> keys = new LinkedHashSet<>();
        plan.forEach(i -> keys.add(i.key()));
        assertEquals(plan.size(), keys.size(), "keys are unique");
        assertEquals(11 * 2 + 11 * 2 + 11 + 2, plan.size());
        assertTrue(keys.contains("ours/cpu/float32/attn-gqa/backward"));
        assertTrue(keys.contains("torch/cpu/float32/conv-dw/backward"));
        assertTrue(keys.contains("ort/cpu/float32/ln-4k-4k/forward"));
        assertTrue(keys.contains("ceiling/cpu/float32/fma/-"));
        // each problem and direction measured by ours and the peers back to back
        List<String> order = new ArrayList<>(keys);
        int oursAt = order.indexOf("ours/cpu/float32/conv-s2/forward");
        assertEquals(List.of("ours/cpu/float32/conv-s2/forward", "torch/cpu/float32/conv-s2/forward",
                "ort/cpu/float32/conv-s2/forward", "ours/cpu/float32/conv-s2/backward",
                "torch/cpu/float32/conv-s2/backward"), order.subList(oursAt, oursAt + 5));
        List<BenchPlan.Item> filtered = BenchPlan.of(cpu, true, true, List.of(Pattern.compile("ln-8k-1k/forward")));
        List<String> fk = new ArrayList<>();
        filtered.forEach(i -> fk.add(i.key()));
        // the copy ceiling right before the layer norm problems, the FMA ceiling at the end
        assertEquals(List.of("ceiling/cpu/float32/copy/-", "ours/cpu/float32/ln-8k-1k/forward",
                "torch/cpu/float32/ln-8k-1k/forward", "ort/cpu/float32/ln-8k-1k/forward", "ceiling/cpu/float32/fma/-"),
                fk);
        assertEquals("ceiling/cpu/float32/copy/-", plan.get(0).key());
        assertEquals("ours/cpu/float32/ln-8k-1k/forward", plan.get(1).key());
        BenchPlan.Item ours = filtered.get(1);
        assertEquals("Ours", ours.benchmarkClass());
        assertEquals("forward", ours.method());
        assertTrue(Pattern.compile(ours.include()).matcher("org.kernels4j.bench.Ours.forward").matches());
        assertTrue(!Pattern.compile(ours.include()).matcher("org.kernels4j.bench.Ours.backward").find());
    }

    @Test
    void theCudaPlanIsTheGpuSetInItsDtypes() {
        List<BenchPlan.Item> plan = BenchPlan.of(Map.of("cuda", Set.of(DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16)),
                false, false, List.of());
        // layer norm: 3 + 3 + 2 dtypes; attention: 24 problems x 2; conv: 6 x 2; each forward and backward
        assertEquals((8 + 48 + 12) * 2, plan.size());
        List<String> keys = plan.stream().map(BenchPlan.Item::key).toList();
        assertTrue(keys.contains("ours/cuda/float32/ln-16k-4k/backward"));
        assertTrue(keys.contains("ours/cuda/bfloat16/attn-fa-d128-16k-causal/forward"));
        assertTrue(!keys.contains("ours/cuda/float32/conv-rn50-c2/forward"), "conv on the GPU set is bf16/fp16 only");
        assertTrue(keys.stream().noneMatch(k -> k.contains("conv-r56")), "no CPU-set problem on cuda");
        List<BenchPlan.Item> noFp16 = BenchPlan.of(Map.of("cuda", Set.of(DType.FLOAT32, DType.BFLOAT16)), false, false,
                List.of());
        assertTrue(noFp16.stream().noneMatch(i -> i.key().contains("/float16/")), "a dtype the device lacks is skipped");
    }
}
