package org.kernels4j.gpuprobe;

import static org.jocl.CL.*;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import org.jocl.CL;
import org.jocl.CLException;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_context_properties;
import org.jocl.cl_device_id;
import org.jocl.cl_kernel;
import org.jocl.cl_mem;
import org.jocl.cl_platform_id;
import org.jocl.cl_program;
import org.jocl.cl_queue_properties;

/**
 * What JOCL 2.0.6 finds through the OpenCL ICD loader (on the GPU machine: NVIDIA's ICD, which
 * device-check.sh registers), each device's properties that the OpenCL backend cares about, and
 * a one-kernel check per device: out = fma(a, x, y) on fresh random data, compared bit for bit.
 */
final class OpenClProbe {

    // cl_nv_device_attribute_query (not in JOCL's constants)
    private static final int CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV = 0x4000;
    private static final int CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV = 0x4001;
    private static final int CL_DEVICE_WARP_SIZE_NV = 0x4003;

    private static final String SOURCE = """
            __kernel void axpy_fma(__global const float* x, __global const float* y, __global float* out,
                                   float a, int n) {
                int i = get_global_id(0);
                if (i < n) out[i] = fma(a, x[i], y[i]);
            }
            """;

    static void run(Map<String, Object> s) throws Exception {
        try {
            CL.setExceptionsEnabled(true); // first use: loads libJOCL and dlopens libOpenCL.so(.1)
        } catch (Throwable e) {
            throw new Report.Unavailable("JOCL cannot load the OpenCL ICD loader: " + Report.describe(e));
        }
        int[] count = new int[1];
        try {
            clGetPlatformIDs(0, null, count);
        } catch (CLException e) {
            throw new Report.Unavailable("no OpenCL platform (" + e.getMessage() + "): the ICD loader found no vendor .icd"
                    + " (OCL_ICD_VENDORS=" + System.getenv().getOrDefault("OCL_ICD_VENDORS", "unset") + ")");
        }
        if (count[0] == 0) throw new Report.Unavailable("no OpenCL platform");
        cl_platform_id[] platforms = new cl_platform_id[count[0]];
        clGetPlatformIDs(platforms.length, platforms, null);
        List<Map<String, Object>> out = new ArrayList<>();
        List<String> summary = new ArrayList<>();
        boolean allCorrect = true;
        for (cl_platform_id p : platforms) {
            Map<String, Object> pm = new LinkedHashMap<>();
            pm.put("name", platformString(p, CL_PLATFORM_NAME));
            pm.put("vendor", platformString(p, CL_PLATFORM_VENDOR));
            pm.put("version", platformString(p, CL_PLATFORM_VERSION));
            List<Map<String, Object>> devices = new ArrayList<>();
            pm.put("devices", devices);
            out.add(pm);
            int[] nd = new int[1];
            try {
                clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, null, nd);
            } catch (CLException e) {
                pm.put("error", e.getMessage());
                continue;
            }
            cl_device_id[] ids = new cl_device_id[nd[0]];
            clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, ids.length, ids, null);
            for (cl_device_id d : ids) {
                Map<String, Object> dm = describe(d);
                devices.add(dm);
                try {
                    boolean ok = axpyCheck(p, d, dm);
                    allCorrect &= ok;
                    summary.add(dm.get("name") + ": " + (ok ? "kernel correct" : "kernel WRONG"));
                } catch (CLException e) {
                    dm.put("kernel_check", "failed: " + e.getMessage());
                    summary.add(dm.get("name") + ": " + e.getMessage());
                    allCorrect = false;
                }
            }
        }
        s.put("platforms", out);
        s.put("summary", String.join("; ", summary));
        if (!allCorrect) throw new IllegalStateException("an OpenCL device failed the kernel check: " + summary);
    }

    private static Map<String, Object> describe(cl_device_id d) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", deviceString(d, CL_DEVICE_NAME));
        m.put("vendor", deviceString(d, CL_DEVICE_VENDOR));
        m.put("version", deviceString(d, CL_DEVICE_VERSION));
        m.put("driver_version", deviceString(d, CL_DRIVER_VERSION));
        m.put("opencl_c_version", deviceString(d, CL_DEVICE_OPENCL_C_VERSION));
        m.put("compute_units", deviceInt(d, CL_DEVICE_MAX_COMPUTE_UNITS));
        m.put("global_memory_bytes", deviceLong(d, CL_DEVICE_GLOBAL_MEM_SIZE));
        m.put("local_memory_bytes", deviceLong(d, CL_DEVICE_LOCAL_MEM_SIZE));
        m.put("max_work_group_size", deviceLong(d, CL_DEVICE_MAX_WORK_GROUP_SIZE));
        String ext = deviceString(d, CL_DEVICE_EXTENSIONS);
        List<String> extensions = Arrays.stream(ext.trim().split("\\s+")).sorted().toList();
        m.put("fp16", extensions.contains("cl_khr_fp16"));
        m.put("fp64", extensions.contains("cl_khr_fp64"));
        m.put("subgroups", extensions.contains("cl_khr_subgroups"));
        if (extensions.contains("cl_nv_device_attribute_query")) {
            m.put("nv_compute_capability", deviceInt(d, CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV) + "."
                    + deviceInt(d, CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV));
            m.put("nv_warp_size", deviceInt(d, CL_DEVICE_WARP_SIZE_NV));
        }
        m.put("extensions", extensions);
        return m;
    }

    @SuppressWarnings("deprecation") // clCreateCommandQueue: the only queue call an OpenCL 1.x device has
    private static boolean axpyCheck(cl_platform_id p, cl_device_id d, Map<String, Object> m) {
        int n = 1_000_003, guard = 256;
        SplittableRandom rnd = new SplittableRandom(System.nanoTime());
        float a = (float) (rnd.nextDouble() * 4 - 2);
        float[] x = new float[n], y = new float[n], out = new float[n + guard];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextDouble() * 2 - 1);
            y[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        Arrays.fill(out, Float.NaN);
        cl_context_properties props = new cl_context_properties();
        props.addProperty(CL_CONTEXT_PLATFORM, p);
        cl_context ctx = clCreateContext(props, 1, new cl_device_id[] {d}, null, null, null);
        cl_command_queue queue = null;
        cl_program program = null;
        cl_kernel kernel = null;
        cl_mem bx = null, by = null, bo = null;
        try {
            String version = String.valueOf(m.get("version"));
            queue = version.startsWith("OpenCL 1.")
                    ? clCreateCommandQueue(ctx, d, 0, null)
                    : clCreateCommandQueueWithProperties(ctx, d, new cl_queue_properties(), null);
            program = clCreateProgramWithSource(ctx, 1, new String[] {SOURCE}, null, null);
            try {
                clBuildProgram(program, 0, null, null, null, null);
            } catch (CLException e) {
                throw new CLException(e.getMessage() + "; build log: " + buildLog(program, d), e.getStatus());
            }
            kernel = clCreateKernel(program, "axpy_fma", null);
            bx = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, 4L * n, Pointer.to(x), null);
            by = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, 4L * n, Pointer.to(y), null);
            bo = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, 4L * (n + guard), Pointer.to(out), null);
            clSetKernelArg(kernel, 0, Sizeof.cl_mem, Pointer.to(bx));
            clSetKernelArg(kernel, 1, Sizeof.cl_mem, Pointer.to(by));
            clSetKernelArg(kernel, 2, Sizeof.cl_mem, Pointer.to(bo));
            clSetKernelArg(kernel, 3, Sizeof.cl_float, Pointer.to(new float[] {a}));
            clSetKernelArg(kernel, 4, Sizeof.cl_int, Pointer.to(new int[] {n}));
            long local = 64, global = (n + local - 1) / local * local;
            clEnqueueNDRangeKernel(queue, kernel, 1, null, new long[] {global}, new long[] {local}, 0, null, null);
            clEnqueueReadBuffer(queue, bo, CL_TRUE, 0, 4L * (n + guard), Pointer.to(out), 0, null, null);
            int wrong = 0, nan = 0, stray = 0;
            for (int i = 0; i < n; i++) {
                if (Float.isNaN(out[i])) nan++;
                else if (Float.floatToRawIntBits(out[i]) != Float.floatToRawIntBits(Math.fma(a, x[i], y[i]))) wrong++;
            }
            for (int i = n; i < n + guard; i++) {
                if (!Float.isNaN(out[i])) stray++;
            }
            boolean ok = wrong == 0 && nan == 0 && stray == 0;
            m.put("kernel_check", ok ? "correct" : "WRONG");
            m.put("kernel_bit_exact_mismatches", wrong);
            m.put("kernel_unwritten_or_nan", nan);
            m.put("kernel_guard_elements_overwritten", stray);
            return ok;
        } finally {
            if (bx != null) clReleaseMemObject(bx);
            if (by != null) clReleaseMemObject(by);
            if (bo != null) clReleaseMemObject(bo);
            if (kernel != null) clReleaseKernel(kernel);
            if (program != null) clReleaseProgram(program);
            if (queue != null) clReleaseCommandQueue(queue);
            clReleaseContext(ctx);
        }
    }

    private static String buildLog(cl_program program, cl_device_id d) {
        long[] size = new long[1];
        clGetProgramBuildInfo(program, d, CL_PROGRAM_BUILD_LOG, 0, null, size);
        byte[] buf = new byte[(int) size[0]];
        clGetProgramBuildInfo(program, d, CL_PROGRAM_BUILD_LOG, buf.length, Pointer.to(buf), null);
        return cString(buf);
    }

    private static String platformString(cl_platform_id p, int param) {
        long[] size = new long[1];
        clGetPlatformInfo(p, param, 0, null, size);
        byte[] buf = new byte[(int) size[0]];
        clGetPlatformInfo(p, param, buf.length, Pointer.to(buf), null);
        return cString(buf);
    }

    private static String deviceString(cl_device_id d, int param) {
        long[] size = new long[1];
        clGetDeviceInfo(d, param, 0, null, size);
        byte[] buf = new byte[(int) size[0]];
        clGetDeviceInfo(d, param, buf.length, Pointer.to(buf), null);
        return cString(buf);
    }

    private static int deviceInt(cl_device_id d, int param) {
        int[] v = new int[1];
        clGetDeviceInfo(d, param, Sizeof.cl_int, Pointer.to(v), null);
        return v[0];
    }

    private static long deviceLong(cl_device_id d, int param) {
        long[] v = new long[1];
        clGetDeviceInfo(d, param, Sizeof.cl_long, Pointer.to(v), null);
        return v[0];
    }

    private static String cString(byte[] buf) {
        int len = 0;
        while (len < buf.length && buf[len] != 0) len++;
        return new String(buf, 0, len, StandardCharsets.UTF_8).trim();
    }

    private OpenClProbe() {
    }
}
