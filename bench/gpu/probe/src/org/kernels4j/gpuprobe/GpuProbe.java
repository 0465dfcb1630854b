package org.kernels4j.gpuprobe;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * First contact with a GPU machine from the JVM (issue 9): which native pieces load, what the
 * device is, whether a module built on the development machine runs there and computes the right
 * thing, and the copy-bandwidth ceiling of our own kernel. Each step is reported on its own
 * (ok / unavailable: why / failed: why); a missing library never ends the run.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp probe.jar:lib/* org.kernels4j.gpuprobe.GpuProbe \
 *      [--kernels .gpu/probe] [--out probe.json] [--copy-mib 1024] [--repeats 30] [--skip cublas,opencl]
 * </pre>
 * ({@code java -jar .gpu/probe/probe.jar ...} is the same: the jar's manifest names its class path.)
 * Exit status: 0 when the CUDA kernel check passed, 3 when there is no usable CUDA driver or
 * device (the expected outcome on a machine without a GPU), 1 when a CUDA step failed.
 */
public final class GpuProbe {

    public static void main(String[] args) {
        Map<String, String> opt = options(args);
        if (opt.containsKey("list-symbols")) { // for prepare.sh: checked against libJCudaDriver's imports
            CudaProbe.usedSymbols().forEach(System.out::println);
            return;
        }
        Path kernels = Path.of(opt.getOrDefault("kernels", ".gpu/probe"));
        Report report = new Report(Path.of(opt.getOrDefault("out", "probe.json")));
        long copyBytes = Long.parseLong(opt.getOrDefault("copy-mib", "1024")) << 20;
        int repeats = Integer.parseInt(opt.getOrDefault("repeats", "30"));
        Set<String> skip = Set.of(opt.getOrDefault("skip", "").split(","));

        report.put("runtime", runtime());
        int status;
        try (CudaProbe cuda = new CudaProbe(repeats)) {
            boolean up = report.run("cuda.library", cuda::library) && report.run("cuda.init", cuda::init);
            if (up) {
                report.run("cuda.device", cuda::properties); // a failure here is reported, and the kernels still run
                boolean kernelOk = report.run("cuda.kernel", s -> cuda.kernel(s, kernels));
                boolean copyOk = report.run("cuda.copy_bandwidth", s -> cuda.copyBandwidth(s, kernels, copyBytes));
                status = kernelOk && copyOk && "ok".equals(report.status("cuda.device")) ? 0 : 1;
            } else {
                String why = "no usable CUDA driver or device (see cuda.library / cuda.init)";
                report.skip("cuda.device", why);
                report.skip("cuda.kernel", why);
                report.skip("cuda.copy_bandwidth", why);
                boolean missing = List.of("cuda.library", "cuda.init").stream()
                        .map(report::status).allMatch(st -> st == null || st.equals("ok") || st.equals("unavailable"));
                status = missing ? 3 : 1;
            }
            if (skip.contains("cublas")) report.skip("cublas", "--skip cublas");
            else if (!cuda.ready()) report.skip("cublas", "needs a CUDA context");
            else report.run("cublas", CublasProbe::run);
        }
        if (skip.contains("opencl")) report.skip("opencl", "--skip opencl");
        else report.run("opencl", OpenClProbe::run);
        report.put("exit_status", status);
        report.flush();
        String why = List.of("cuda.library", "cuda.init", "cuda.device", "cuda.kernel", "cuda.copy_bandwidth").stream()
                .filter(n -> report.reason(n) != null).map(n -> n + ": " + report.reason(n)).findFirst().orElse("");
        System.out.println("[probe] exit status " + status + (status == 0 ? "" : ", " + why));
        System.exit(status);
    }

    private static Map<String, Object> runtime() {
        Map<String, Object> m = new LinkedHashMap<>();
        for (String k : List.of("java.version", "java.vm.name", "java.home", "os.name", "os.arch", "os.version")) {
            m.put(k, System.getProperty(k));
        }
        m.put("processors", Runtime.getRuntime().availableProcessors());
        m.put("max_heap_bytes", Runtime.getRuntime().maxMemory());
        for (String k : List.of("LD_LIBRARY_PATH", "OCL_ICD_VENDORS")) {
            m.put(k, System.getenv(k));
        }
        return m;
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + List.of(args));
            }
            m.put(args[i].substring(2), args[++i]);
        }
        return m;
    }

    private GpuProbe() {
    }
}
