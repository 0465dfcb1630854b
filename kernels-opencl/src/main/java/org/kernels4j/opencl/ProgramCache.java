package org.kernels4j.opencl;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.cl_device_id;
import org.jocl.cl_program;
import org.kernels4j.KernelBuildException;
import org.kernels4j.spi.Debug;

/**
 * Programs of one device, compiled once per source and parameter set ({@code -D} defines) and kept for the
 * device's lifetime. Sources are dialect code: the dialect header {@code kernels4j.h} is placed in front of
 * them (an {@code #include "kernels4j.h"} line in the source is dropped, since OpenCL compilers cannot read
 * it from the jar), followed by a {@code #line} so that build logs point at the source's own lines.
 */
final class ProgramCache {

    private static final String HEADER_RESOURCE = "/org/kernels4j/dialect/kernels4j.h";
    private static final Pattern INCLUDE = Pattern.compile("(?m)^[ \\t]*#[ \\t]*include[ \\t]*[\"<]kernels4j\\.h[\">].*$");
    private static volatile String header;

    private record Key(String code, Map<String, String> defines) {
    }

    private record KernelKey(Key program, String entryPoint) {
    }

    private final OpenClDevice device;
    private final String baseOptions;
    private final ConcurrentHashMap<Key, CompletableFuture<cl_program>> programs = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<KernelKey, CompiledKernel> kernels = new ConcurrentHashMap<>();

    ProgramCache(OpenClDevice device, String baseOptions) {
        this.device = device;
        this.baseOptions = baseOptions;
    }

    /** A kernel of the program for {@code code} with {@code defines}, shared by every caller. */
    CompiledKernel kernel(String name, String code, Map<String, String> defines, String entryPoint) {
        Key key = new Key(code, new TreeMap<>(defines));
        CompiledKernel k = kernels.get(new KernelKey(key, entryPoint));
        if (k != null) {
            return k;
        }
        cl_program p = program(name, code, defines);
        return kernels.computeIfAbsent(new KernelKey(key, entryPoint),
                kk -> new CompiledKernel(device, p, entryPoint, name));
    }

    /**
     * The program for {@code code} with {@code defines}, built on first use. Concurrent requests for the same
     * program wait for one build; a failed build is not cached.
     *
     * @throws KernelBuildException with the build log when the compiler rejects the source
     */
    cl_program program(String name, String code, Map<String, String> defines) {
        Key key = new Key(code, new TreeMap<>(defines));
        CompletableFuture<cl_program> mine = new CompletableFuture<>();
        CompletableFuture<cl_program> existing = programs.putIfAbsent(key, mine);
        if (existing != null) {
            try {
                return existing.join();
            } catch (java.util.concurrent.CompletionException e) {
                if (e.getCause() instanceof RuntimeException re) {
                    throw re;
                }
                throw e;
            }
        }
        try {
            cl_program p = build(name, code, key.defines());
            mine.complete(p);
            return p;
        } catch (RuntimeException e) {
            programs.remove(key, mine);
            mine.completeExceptionally(e);
            throw e;
        }
    }

    private cl_program build(String name, String code, Map<String, String> defines) {
        String source = header() + "\n#line 1 \"" + name.replace('"', '\'') + "\"\n" + INCLUDE.matcher(code).replaceAll("");
        StringBuilder options = new StringBuilder(baseOptions);
        defines.forEach((k, v) -> options.append(" -D").append(k).append('=').append(v));
        Debug.log(3, () -> "opencl: building '" + name + "' for " + device.id() + " with options: " + options
                + "\n" + source);
        int[] err = new int[1];
        cl_program p = CL.clCreateProgramWithSource(device.context, 1, new String[] {source}, null, err);
        OpenClCalls.check(err[0], "clCreateProgramWithSource");
        long t0 = System.nanoTime();
        // the compiler may be LLVM in this process, which can replace the JVM's signal handlers (JvmSignalHandlers)
        JvmSignalHandlers jvm = JvmSignalHandlers.save();
        int status;
        try {
            status = CL.clBuildProgram(p, 1, new cl_device_id[] {device.id}, options.toString(), null, null);
        } finally {
            jvm.restore();
        }
        String log = buildLog(p);
        if (status != CL.CL_SUCCESS) {
            CL.clReleaseProgram(p);
            throw new KernelBuildException("kernel source '" + name + "' failed to build for " + device.id() + " ("
                    + device.name() + ") with options [" + options + "]: " + OpenClCalls.errorName(status), log);
        }
        Debug.log(2, () -> String.format("opencl: built '%s' for %s in %.0f ms [%s]", name, device.id(),
                (System.nanoTime() - t0) / 1e6, options));
        if (!log.isBlank()) {
            Debug.log(3, () -> "opencl: build log of '" + name + "':\n" + log);
        }
        return p;
    }

    private String buildLog(cl_program p) {
        long[] size = new long[1];
        if (CL.clGetProgramBuildInfo(p, device.id, CL.CL_PROGRAM_BUILD_LOG, 0, null, size) != CL.CL_SUCCESS || size[0] == 0) {
            return "";
        }
        byte[] bytes = new byte[(int) size[0]];
        if (CL.clGetProgramBuildInfo(p, device.id, CL.CL_PROGRAM_BUILD_LOG, bytes.length, Pointer.to(bytes), null) != CL.CL_SUCCESS) {
            return "";
        }
        return OpenClCalls.cString(bytes);
    }

    /** Releases every program and kernel of this cache (used for throw-away caches such as the subgroup probe). */
    void release() {
        kernels.values().forEach(CompiledKernel::release);
        kernels.clear();
        programs.values().forEach(f -> {
            if (f.isDone() && !f.isCompletedExceptionally()) {
                CL.clReleaseProgram(f.join());
            }
        });
        programs.clear();
    }

    /** The dialect header, from the abstraction jar. */
    static String header() {
        String h = header;
        if (h == null) {
            try (InputStream in = ProgramCache.class.getResourceAsStream(HEADER_RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException("dialect header " + HEADER_RESOURCE
                            + " is missing from the class path (kernels4j-abstraction too old?)");
                }
                h = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException("reading " + HEADER_RESOURCE, e);
            }
            header = h;
        }
        return h;
    }

    /** A kernel source shipped with this module, {@code org/kernels4j/opencl/<file>}. */
    static String resource(String file) {
        try (InputStream in = ProgramCache.class.getResourceAsStream(file)) {
            if (in == null) {
                throw new IllegalStateException("kernel source " + file + " is missing from the kernels4j-opencl jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file, e);
        }
    }
}
