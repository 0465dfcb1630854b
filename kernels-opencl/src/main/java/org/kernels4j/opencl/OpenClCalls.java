package org.kernels4j.opencl;

import java.nio.charset.StandardCharsets;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;

/**
 * Error checks and info queries on top of JOCL. JOCL's global exception switch is left alone (a framework in
 * the same JVM may rely on it), so every call's status is checked here.
 */
final class OpenClCalls {

    private OpenClCalls() {
    }

    /** Throws {@link IllegalStateException} naming the call and the OpenCL error when {@code status} is not success. */
    static void check(int status, String call) {
        if (status != CL.CL_SUCCESS) {
            throw new IllegalStateException(call + " failed: " + errorName(status));
        }
    }

    static String errorName(int status) {
        String s = CL.stringFor_errorCode(status);
        return s == null || s.startsWith("INVALID") ? "OpenCL error " + status : s + " (" + status + ")";
    }

    static String deviceString(cl_device_id device, int param) {
        long[] size = new long[1];
        check(CL.clGetDeviceInfo(device, param, 0, null, size), "clGetDeviceInfo");
        byte[] bytes = new byte[(int) size[0]];
        check(CL.clGetDeviceInfo(device, param, bytes.length, Pointer.to(bytes), null), "clGetDeviceInfo");
        return cString(bytes);
    }

    static long deviceLong(cl_device_id device, int param) {
        long[] v = new long[1];
        check(CL.clGetDeviceInfo(device, param, Sizeof.cl_ulong, Pointer.to(v), null), "clGetDeviceInfo");
        return v[0];
    }

    static int deviceInt(cl_device_id device, int param) {
        int[] v = new int[1];
        check(CL.clGetDeviceInfo(device, param, Sizeof.cl_uint, Pointer.to(v), null), "clGetDeviceInfo");
        return v[0];
    }

    static long deviceSize(cl_device_id device, int param) {
        if (Sizeof.size_t == 4) {
            return deviceInt(device, param) & 0xffffffffL;
        }
        return deviceLong(device, param);
    }

    static String platformString(cl_platform_id platform, int param) {
        long[] size = new long[1];
        check(CL.clGetPlatformInfo(platform, param, 0, null, size), "clGetPlatformInfo");
        byte[] bytes = new byte[(int) size[0]];
        check(CL.clGetPlatformInfo(platform, param, bytes.length, Pointer.to(bytes), null), "clGetPlatformInfo");
        return cString(bytes);
    }

    static String cString(byte[] bytes) {
        int n = 0;
        while (n < bytes.length && bytes[n] != 0) {
            n++;
        }
        return new String(bytes, 0, n, StandardCharsets.UTF_8).trim();
    }
}
