package org.kernels4j.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The kernels compiled at build time ({@code build-kernels.sh}), read from the jar: the manifest
 * {@code org/kernels4j/cuda/kernels/manifest.txt} lists each module (a {@code .cu} file, or a portable
 * dialect source compiled through the shim), the architectures it has cubins for, and every entry point
 * with its parameter types as the PTX declares them.
 *
 * <p>A CUDA-only entry point is found by its name alone ({@code ln_fwd_v4_bf16}); every entry point also by
 * {@code module:name} ({@code dialect_layernorm_f32:ln_forward}), since dialect modules repeat names.
 */
final class KernelManifest {

    /** Where the build puts the kernels, as a class-path resource folder. */
    static final String RESOURCE_DIR = "org/kernels4j/cuda/kernels/";

    /**
     * One module.
     *
     * @param name   file name stem of its PTX and cubins
     * @param kind   {@code cuda} (a .cu source) or {@code dialect} (a .cl source through kernels4j.h)
     * @param ptx    the virtual architecture of its PTX, e.g. {@code compute_80}
     * @param cubins the architectures it has machine code for, e.g. {@code sm_80}, {@code sm_90a}
     */
    record Module(String name, String kind, String ptx, List<String> cubins) {
    }

    /**
     * One kernel entry point.
     *
     * @param module  its module
     * @param name    the {@code extern "C"} name
     * @param params  PTX parameter types in order: {@code u64}, {@code s32}, {@code f32}... or
     *                {@code b8:<bytes>} for a struct passed by value
     * @param targets where it exists: {@code ptx} and the cubin architectures (a source may define some
     *                kernels for some architectures only)
     */
    record Entry(Module module, String name, List<String> params, List<String> targets) {
    }

    private final String nvccVersion;
    private final Map<String, Module> modules;
    private final Map<String, Entry> entries;

    private KernelManifest(String nvccVersion, Map<String, Module> modules, Map<String, Entry> entries) {
        this.nvccVersion = nvccVersion;
        this.modules = modules;
        this.entries = entries;
    }

    /** The manifest in the jar, or null when this jar was built without CUDA kernels. */
    static KernelManifest load() {
        byte[] text = resource("manifest.txt");
        return text == null ? null : parse(new String(text, StandardCharsets.UTF_8));
    }

    /** Parses manifest text; a malformed line is an {@link IllegalStateException} naming it. */
    static KernelManifest parse(String text) {
        String nvcc = null;
        Map<String, Module> modules = new LinkedHashMap<>();
        Map<String, Entry> entries = new LinkedHashMap<>();
        int lineNo = 0;
        for (String line : text.split("\n")) {
            lineNo++;
            String l = line.strip();
            if (l.isEmpty() || l.startsWith("#")) {
                continue;
            }
            String[] f = l.split("\\s+");
            try {
                switch (f[0]) {
                    case "format" -> {
                        if (!f[1].equals("1")) {
                            throw new IllegalStateException("format " + f[1] + " is not supported (expected 1)");
                        }
                    }
                    case "nvcc" -> nvcc = f[1];
                    case "module" -> {
                        Map<String, String> kv = keyValues(f, 3);
                        List<String> cubins = kv.getOrDefault("cubins", "").isEmpty() ? List.of()
                                : List.of(kv.get("cubins").split(","));
                        modules.put(f[1], new Module(f[1], f[2], kv.get("ptx"), cubins));
                    }
                    case "entry" -> {
                        Module m = modules.get(f[1]);
                        if (m == null) {
                            throw new IllegalStateException("entry of unknown module " + f[1]);
                        }
                        List<String> params = f[3].equals("-") ? List.of() : List.of(f[3].split(","));
                        Entry e = new Entry(m, f[2], params, List.of(f[4].split(",")));
                        entries.put(m.name() + ":" + e.name(), e);
                        if (m.kind().equals("cuda") && entries.putIfAbsent(e.name(), e) != null) {
                            throw new IllegalStateException("entry " + e.name() + " is defined by two modules");
                        }
                    }
                    default -> throw new IllegalStateException("unknown record '" + f[0] + "'");
                }
            } catch (ArrayIndexOutOfBoundsException e) {
                throw new IllegalStateException("kernel manifest line " + lineNo + " is incomplete: " + l, e);
            } catch (IllegalStateException e) {
                throw new IllegalStateException("kernel manifest line " + lineNo + ": " + e.getMessage() + ": " + l, e);
            }
        }
        if (nvcc == null) {
            throw new IllegalStateException("kernel manifest names no nvcc version");
        }
        return new KernelManifest(nvcc, Map.copyOf(modules), Map.copyOf(entries));
    }

    private static Map<String, String> keyValues(String[] f, int from) {
        Map<String, String> kv = new LinkedHashMap<>();
        for (String s : Arrays.copyOfRange(f, from, f.length)) {
            int eq = s.indexOf('=');
            if (eq < 0) {
                throw new IllegalStateException("expected key=value, got '" + s + "'");
            }
            kv.put(s.substring(0, eq), s.substring(eq + 1));
        }
        return kv;
    }

    /** The nvcc version the kernels were built with, e.g. {@code 13.0.88}. */
    String nvccVersion() {
        return nvccVersion;
    }

    /** The CUDA major version of that nvcc: a driver must support at least this to load the kernels. */
    int nvccMajor() {
        return Integer.parseInt(nvccVersion.substring(0, nvccVersion.indexOf('.')));
    }

    Map<String, Module> modules() {
        return modules;
    }

    /** Every entry point of every module. */
    List<Entry> entries() {
        return entries.entrySet().stream().filter(e -> e.getKey().indexOf(':') > 0).map(Map.Entry::getValue).toList();
    }

    /**
     * The entry point {@code name} or {@code module:name}.
     *
     * @throws IllegalArgumentException when there is none
     */
    Entry entry(String name) {
        Entry e = entries.get(name);
        if (e == null) {
            throw new IllegalArgumentException("kernel: no CUDA kernel '" + name + "' in this build (the manifest lists "
                    + entries.size() + " entry points of modules " + modules.keySet() + ")");
        }
        return e;
    }

    /**
     * The image of its module to load {@code entry} from on a device of compute capability
     * {@code major.minor}, among the targets the entry exists for: the cubin of exactly that architecture
     * ({@code sm_XYa} or {@code sm_XY}); else the newest cubin of the same major version and a lower minor one
     * (machine code runs on later minor versions of its major version, except the arch-specific {@code a}
     * targets); else the PTX, which the driver compiles; null when none of them fits.
     */
    static String imageFor(Entry entry, int major, int minor) {
        String module = entry.module().name();
        List<String> targets = entry.targets();
        String exact = "sm_" + major + minor;
        for (String a : targets) {
            if (a.equals(exact + "a")) {
                return module + "." + a + ".cubin";
            }
        }
        if (targets.contains(exact)) {
            return module + "." + exact + ".cubin";
        }
        String best = null;
        int bestMinor = -1;
        for (String a : targets) {
            if (a.endsWith("a") || !a.startsWith("sm_" + major) || a.length() != exact.length()) {
                continue;
            }
            int m = a.charAt(a.length() - 1) - '0';
            if (m <= minor && m > bestMinor) {
                best = a;
                bestMinor = m;
            }
        }
        if (best != null) {
            return module + "." + best + ".cubin";
        }
        return targets.contains("ptx") ? module + ".ptx" : null;
    }

    /** The bytes of {@code resource} in the kernels folder, or null. */
    static byte[] resource(String file) {
        try (InputStream in = KernelManifest.class.getClassLoader().getResourceAsStream(RESOURCE_DIR + file)) {
            return in == null ? null : in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + RESOURCE_DIR + file, e);
        }
    }
}
