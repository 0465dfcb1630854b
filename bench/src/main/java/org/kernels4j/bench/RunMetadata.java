package org.kernels4j.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.Device;

/**
 * Where and from what a run was measured: machine name (the history's grouping key), CPU model and cores,
 * JDK, OS, GPUs with their driver, the git commit (and whether the tree had uncommitted changes), the date,
 * the intra-op thread count shared with the peers, whether it was a quick run, the peers' versions, and the
 * work per call of benchmarks whose work depends on the machine ({@code ceiling/copy} bytes, {@code ceiling/fma}
 * FLOPs: the FMA loop's vector width is the machine's).
 */
record RunMetadata(String machine, String date, String commit, boolean dirty, String cpuModel, int cores,
                   String jdk, String os, List<String> gpus, int threads, boolean quick, Map<String, String> peers,
                   Map<String, Double> work) {

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    RunMetadata {
        gpus = gpus == null ? List.of() : List.copyOf(gpus);
        peers = peers == null ? Map.of() : Map.copyOf(peers);
        work = work == null ? Map.of() : Map.copyOf(work);
    }

    /** The run's time. */
    Instant instant() {
        return Instant.parse(date);
    }

    /** The first 10 characters of the commit, or "unknown". */
    String shortCommit() {
        return commit == null || commit.isEmpty() ? "unknown" : commit.substring(0, Math.min(10, commit.length()));
    }

    /** Metadata of a bare JMH file: only the machine (its folder) and the date (its file time) are known. */
    static RunMetadata unknown(String machine, Instant date) {
        return new RunMetadata(machine, date.toString(), "", false, "unknown", 0, "unknown", "unknown", List.of(), 0,
                false, Map.of(), Map.of());
    }

    static RunMetadata read(Path file) {
        try {
            return JSON.readValue(file.toFile(), RunMetadata.class);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file + ": " + e.getMessage(), e);
        }
    }

    void write(Path file) {
        try {
            JSON.writeValue(file.toFile(), this);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file + ": " + e.getMessage(), e);
        }
    }

    /** Collects the metadata of this machine and checkout now. */
    static RunMetadata collect(String machineOverride, String commitOverride, Path repo, int threads, boolean quick, Map<String, String> peers,
                   Map<String, Double> work) {
        String cpu = readCpuModel();
        int cores = Runtime.getRuntime().availableProcessors();
        List<String> gpus = detectGpus();
        String machine = machineOverride != null ? machineOverride
                : defaultMachineName(cpu, cores, gpus, readCpuFlags().contains("avx512f"));
        String commit = commitOverride != null ? commitOverride : git(repo, "rev-parse", "HEAD");
        boolean dirty = commitOverride == null && !git(repo, "status", "--porcelain", "--untracked-files=no").isEmpty();
        return new RunMetadata(machine, Instant.now().toString(), commit, dirty, cpu, cores,
                System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"),
                System.getProperty("os.name") + " " + System.getProperty("os.version") + " " + System.getProperty("os.arch"),
                gpus, threads, quick, peers, work);
    }

    /**
     * A file-name-safe machine name: the GPU model where there is one, else the CPU model, and the core count; a
     * CPU-only machine with AVX-512 gets {@code -avx512}. The suffix is there because a model name can be as bare
     * as "AMD EPYC": two hosts of that name, one with 256-bit vectors and one with AVX-512 (FMA ceiling 190 against
     * 375 GFLOP/s on 2 cores), would otherwise share one history and every change of host read as a regression.
     */
    static String defaultMachineName(String cpu, int cores, List<String> gpus, boolean avx512) {
        String base = gpus.isEmpty() ? cpu : gpus.get(0).replaceAll("\\(.*", "");
        String slug = base.toLowerCase(Locale.ROOT).replaceAll("\\((r|tm)\\)", " ")
                .replaceAll("\\b(nvidia|amd|intel|corporation|processor|cpu)\\b", "")
                .replaceAll("[^a-z0-9]+", "-").replaceAll("(^-+|-+$)", "");
        return (slug.isEmpty() ? "machine" : slug) + "-" + cores + "c" + (gpus.isEmpty() && avx512 ? "-avx512" : "");
    }

    /** The CPU's feature flags (Linux's {@code /proc/cpuinfo}), empty where they cannot be read. */
    static List<String> readCpuFlags() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"), StandardCharsets.UTF_8)) {
                if (line.startsWith("flags")) {
                    return List.of(line.substring(line.indexOf(':') + 1).trim().split("\\s+"));
                }
            }
        } catch (IOException | UncheckedIOException e) {
            // not Linux: no flags, no suffix
        }
        return List.of();
    }

    static String readCpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"), StandardCharsets.UTF_8)) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | UncheckedIOException e) {
            // not Linux: fall through to the JVM's architecture name
        }
        return System.getProperty("os.arch") + " CPU";
    }

    /** GPUs as "name (driver X)": from nvidia-smi where installed, else from the CUDA backend's devices. */
    static List<String> detectGpus() {
        List<String> l = new ArrayList<>();
        String smi = run(Path.of("."), "nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader");
        for (String line : smi.split("\n")) {
            String[] f = line.split(",");
            if (f.length == 2 && !f[0].isBlank()) {
                l.add(f[0].trim() + " (driver " + f[1].trim() + ")");
            }
        }
        if (l.isEmpty()) {
            for (BackendStatus s : Backends.statuses()) {
                if (s.isAvailable() && s.name().equals("cuda")) {
                    for (Device d : s.backend().devices()) {
                        l.add(d.name() + " (driver " + d.capabilities().driverVersion() + ")");
                    }
                }
            }
        }
        return l;
    }

    private static String git(Path repo, String... args) {
        String[] cmd = new String[args.length + 1];
        cmd[0] = "git";
        System.arraycopy(args, 0, cmd, 1, args.length);
        return run(repo, cmd);
    }

    /** The command's trimmed standard output, or "" when it is missing, fails or takes over 20 s. */
    private static String run(Path dir, String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(false)
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(20, TimeUnit.SECONDS) || p.exitValue() != 0) {
                p.destroy();
                return "";
            }
            return new String(out, StandardCharsets.UTF_8).trim();
        } catch (IOException e) {
            return "";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "";
        }
    }
}
