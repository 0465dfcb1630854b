package org.kernels4j.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_context_properties;
import org.jocl.cl_device_id;
import org.jocl.cl_mem;
import org.jocl.cl_platform_id;
import org.junit.jupiter.api.Test;
import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.Event;
import org.kernels4j.LayerNorm;
import org.kernels4j.Stream;
import org.kernels4j.Tensor;

/** A framework's own buffers and queue, wrapped without copies. */
class OpenClInteropTest {

    @Test
    @SuppressWarnings("deprecation")
    void opsRunOnWrappedBuffersAndQueue() {
        Device dev = TestSupport.device();
        cl_context ctx = OpenClInterop.context(dev);
        int rows = 3;
        int cols = 8;
        float[] x = new float[rows * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = i % 5 - 2f;
        }
        int[] err = new int[1];
        cl_mem xMem = CL.clCreateBuffer(ctx, CL.CL_MEM_READ_WRITE | CL.CL_MEM_COPY_HOST_PTR, 4L * x.length,
                Pointer.to(x), err);
        cl_mem yMem = CL.clCreateBuffer(ctx, CL.CL_MEM_READ_WRITE, 4L * x.length, null, err);
        cl_command_queue queue = CL.clCreateCommandQueue(ctx, OpenClInterop.deviceId(dev), CL.CL_QUEUE_PROFILING_ENABLE, err);
        try (Tensor xt = OpenClInterop.wrap(dev, xMem, DType.FLOAT32, rows, cols);
             Tensor yt = OpenClInterop.wrap(dev, yMem, DType.FLOAT32, rows, cols);
             Tensor mean = dev.allocate(DType.FLOAT32, rows);
             Tensor rstd = dev.allocate(DType.FLOAT32, rows);
             Stream s = OpenClInterop.wrap(dev, queue)) {
            assertSame(xMem, OpenClInterop.buffer(xt));
            assertSame(queue, OpenClInterop.queue(s));
            Event start = s.record();
            LayerNorm.layerNorm().forward(s, xt, null, null, yt, mean, rstd);
            Event end = s.record();
            assertTrue(end.elapsedMillisSince(start) >= 0);
            float[] viaFramework = new float[x.length];
            CL.clEnqueueReadBuffer(queue, yMem, true, 0, 4L * x.length, Pointer.to(viaFramework), 0, null, null);
            assertArrayEquals(yt.toFloatArray(), viaFramework);
            float[] expected = new float[x.length];
            for (int r = 0; r < rows; r++) {
                double mu = 0;
                double var = 0;
                for (int c = 0; c < cols; c++) {
                    mu += x[r * cols + c] / (double) cols;
                }
                for (int c = 0; c < cols; c++) {
                    var += Math.pow(x[r * cols + c] - mu, 2) / cols;
                }
                for (int c = 0; c < cols; c++) {
                    expected[r * cols + c] = (float) ((x[r * cols + c] - mu) / Math.sqrt(var + LayerNorm.DEFAULT_EPSILON));
                }
            }
            assertArrayEquals(expected, viaFramework, 1e-5f);
        } finally {
            // the framework's own references stay valid after the wrappers are closed
            assertTrue(CL.clReleaseMemObject(xMem) == CL.CL_SUCCESS);
            assertTrue(CL.clReleaseMemObject(yMem) == CL.CL_SUCCESS);
            assertTrue(CL.clReleaseCommandQueue(queue) == CL.CL_SUCCESS);
        }
    }

    @Test
    void rejectsForeignContextsAndShortBuffers() {
        Device dev = TestSupport.device();
        int[] err = new int[1];
        cl_mem small = CL.clCreateBuffer(OpenClInterop.context(dev), CL.CL_MEM_READ_WRITE, 8, null, err);
        cl_platform_id[] platform = new cl_platform_id[1];
        CL.clGetPlatformIDs(1, platform, null);
        cl_context_properties props = new cl_context_properties();
        props.addProperty(CL.CL_CONTEXT_PLATFORM, platform[0]);
        cl_context other = CL.clCreateContext(props, 1, new cl_device_id[] {OpenClInterop.deviceId(dev)}, null, null, err);
        cl_mem foreign = CL.clCreateBuffer(other, CL.CL_MEM_READ_WRITE, 64, null, err);
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> OpenClInterop.wrap(dev, foreign, DType.FLOAT32, 4));
            assertTrue(e.getMessage().contains("another OpenCL context"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> OpenClInterop.wrap(dev, small, DType.FLOAT32, 4));
            assertTrue(e.getMessage().contains("needs 16"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> OpenClInterop.wrap(dev, (cl_mem) null, DType.FLOAT32, 1));
        } finally {
            CL.clReleaseMemObject(small);
            CL.clReleaseMemObject(foreign);
            CL.clReleaseContext(other);
        }
    }
}
