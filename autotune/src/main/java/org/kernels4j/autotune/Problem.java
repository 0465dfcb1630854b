package org.kernels4j.autotune;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.kernels4j.Attention;
import org.kernels4j.Conv2d;
import org.kernels4j.DType;
import org.kernels4j.LayerNorm;

/**
 * One problem of a tuning or benchmark set: a name, an op, its sizes and a dtype, read from a line
 * {@code name op key=value ... [dtype=float32,bfloat16]}. The built-in sets {@code cpu} and {@code gpu} are
 * the tables of {@code benchmark-shapes.md}.
 *
 * <p>Keys: {@code layernorm}: {@code rows cols [kind=layer|rms]}; {@code conv2d}: {@code N C H W K R S
 * [stride] [pad] [dilation] [groups] [format=NCHW|NHWC]}; {@code attention}: {@code B H [Hkv] N [Nk] d
 * [causal=none|top-left|bottom-right]}.
 *
 * @param name  the problem's stable name
 * @param op    {@code layernorm}, {@code conv2d} or {@code attention}
 * @param args  the sizes and options
 * @param dtype the element type
 */
record Problem(String name, String op, Map<String, String> args, DType dtype) {

    static final Set<String> OPS = Set.of("layernorm", "conv2d", "attention");

    Problem {
        args = Map.copyOf(args);
    }

    /** The passes of this problem's op, each timed on its own. */
    List<String> passes() {
        return switch (op) {
            case "conv2d" -> List.of("forward", "backward-data", "backward-filter");
            default -> List.of("forward", "backward");
        };
    }

    int i(String key, int otherwise) {
        String v = args.get(key);
        if (v == null) {
            return otherwise;
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + ": " + key + " expects an integer, got '" + v + "'");
        }
    }

    int i(String key) {
        if (!args.containsKey(key)) {
            throw new IllegalArgumentException(name + ": " + op + " needs " + key + "=...");
        }
        return i(key, 0);
    }

    LayerNorm layerNorm() {
        return "rms".equals(args.getOrDefault("kind", "layer")) ? LayerNorm.rmsNorm(LayerNorm.DEFAULT_EPSILON)
                : LayerNorm.layerNorm();
    }

    Conv2d conv() {
        int pad = i("pad", 0);
        return Conv2d.builder()
                .format(Conv2d.Format.valueOf(args.getOrDefault("format", "NCHW").toUpperCase(Locale.ROOT)))
                .stride(i("stride", 1)).padding(pad).dilation(i("dilation", 1)).groups(i("groups", 1)).build();
    }

    int[] convX() {
        boolean nchw = conv().format() == Conv2d.Format.NCHW;
        return nchw ? new int[] {i("N"), i("C"), i("H"), i("W")} : new int[] {i("N"), i("H"), i("W"), i("C")};
    }

    int[] convW() {
        boolean nchw = conv().format() == Conv2d.Format.NCHW;
        int cg = i("C") / i("groups", 1);
        return nchw ? new int[] {i("K"), cg, i("R"), i("S")} : new int[] {i("K"), i("R"), i("S"), cg};
    }

    Attention attention() {
        return Attention.of(switch (args.getOrDefault("causal", "none")) {
            case "none" -> Attention.CausalMask.NONE;
            case "top-left" -> Attention.CausalMask.TOP_LEFT;
            case "bottom-right" -> Attention.CausalMask.BOTTOM_RIGHT;
            default -> throw new IllegalArgumentException(name + ": causal expects none, top-left or bottom-right, got '"
                    + args.get("causal") + "'");
        });
    }

    int[] attnQ() {
        return new int[] {i("B"), i("H"), i("N"), i("d")};
    }

    int[] attnK() {
        return new int[] {i("B"), i("Hkv", i("H")), i("Nk", i("N")), i("d")};
    }

    /** The line this problem was read from, less the name. */
    String describe() {
        StringBuilder sb = new StringBuilder(op);
        new java.util.TreeMap<>(args).forEach((k, v) -> sb.append(' ').append(k).append('=').append(v));
        return sb.append(' ').append(dtype).toString();
    }

    /** Reads the built-in set {@code cpu} or {@code gpu}, or a file in the same format. */
    static List<Problem> load(String set) throws IOException {
        if (set.equals("cpu") || set.equals("gpu")) {
            try (InputStream in = Problem.class.getResourceAsStream("problems/" + set + ".txt")) {
                if (in == null) {
                    throw new IOException("built-in problem set " + set + " is missing from the class path");
                }
                return parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), set);
            }
        }
        Path p = Path.of(set);
        if (!Files.isRegularFile(p)) {
            throw new IOException("shapes: expected cpu, gpu or a problem file, got '" + set + "' (no such file)");
        }
        return parse(Files.readString(p), p.toString());
    }

    /** Parses problem lines; {@code #} starts a comment. */
    static List<Problem> parse(String text, String source) {
        List<Problem> out = new ArrayList<>();
        int lineNo = 0;
        for (String line : text.split("\n")) {
            lineNo++;
            String l = line.replaceAll("#.*", "").trim();
            if (l.isEmpty()) {
                continue;
            }
            String[] t = l.split("\\s+");
            String where = source + ":" + lineNo;
            if (t.length < 2 || !OPS.contains(t[1])) {
                throw new IllegalArgumentException(where + ": expected 'name op key=value ...' with op one of "
                        + OPS + ", got '" + l + "'");
            }
            Map<String, String> args = new LinkedHashMap<>();
            List<DType> dtypes = List.of(DType.FLOAT32);
            for (int i = 2; i < t.length; i++) {
                int eq = t[i].indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException(where + ": expected key=value, got '" + t[i] + "'");
                }
                String k = t[i].substring(0, eq);
                String v = t[i].substring(eq + 1);
                if (k.equals("dtype")) {
                    dtypes = new ArrayList<>();
                    for (String d : v.split(",")) {
                        dtypes.add(DType.parse(d));
                    }
                } else {
                    args.put(k, v);
                }
            }
            for (DType d : dtypes) {
                Problem p = new Problem(t[0], t[1], args, d);
                p.validate(where);
                out.add(p);
            }
        }
        return out;
    }

    private void validate(String where) {
        try {
            switch (op) {
                case "layernorm" -> {
                    i("rows");
                    i("cols");
                    layerNorm();
                }
                case "conv2d" -> conv().problem(convX(), convW(), dtype);
                default -> {
                    attnQ();
                    attnK();
                    attention();
                }
            }
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
        }
    }
}
