package org.kernels4j.gpuprobe;

import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasOperation;

/**
 * Whether JCublas 12.6 works here: it needs {@code libcublas.so.12}, which a CUDA 13 image
 * probably lacks. The library is looked up first (a clear "not found"), JCublas's natives are
 * loaded anyway (to record the exact error), and only then is an sgemm run and checked against a
 * float64 host product. The CUDA backend treats cuBLAS as optional; this says whether it is there.
 */
final class CublasProbe {

    private static final List<String> SYMBOLS = List.of("cublasCreate_v2", "cublasDestroy_v2",
            "cublasGetVersion_v2", "cublasSgemm_v2");

    static void run(Map<String, Object> s) throws Exception {
        String lookup;
        NativeLibs lib = null;
        try {
            lib = NativeLibs.open("libcublas.so.12");
            lookup = "found";
        } catch (Report.Unavailable e) {
            lookup = e.getMessage();
        }
        s.put("libcublas.so.12", lookup);
        try {
            JCublas2.setExceptionsEnabled(true); // loads libJCublas2 (its DT_NEEDED is libcublas.so.12)
            JCublas2.initialize();
            s.put("jcublas_natives", "loaded");
        } catch (Throwable e) {
            s.put("jcublas_natives", "not loaded: " + Report.describe(e));
            throw new Report.Unavailable("JCublas unusable: " + lookup + "; " + Report.describe(e));
        }
        if (lib == null) throw new Report.Unavailable("JCublas natives loaded but " + lookup);
        lib.require(SYMBOLS, "the sgemm check");

        cublasHandle handle = new cublasHandle();
        JCublas2.cublasCreate(handle);
        try {
            int[] version = new int[1];
            JCublas2.cublasGetVersion(handle, version);
            s.put("cublas_version", version[0]);
            double err = sgemmError(handle, 257, 129, 193);
            s.put("sgemm_257x129x193_rel_error_vs_fp64", err);
            boolean ok = err < 1e-5; // fp32 accumulation of ~200 products of unit-range values; tf32 would give ~1e-4
            s.put("summary", "cuBLAS " + version[0] + ", sgemm rel error " + String.format("%.2e", err));
            if (!ok) throw new IllegalStateException("sgemm error " + err + " above 1e-5");
        } finally {
            JCublas2.cublasDestroy(handle);
        }
    }

    /** C = A B (column-major, as cuBLAS) on random data, against a float64 host product: ||C - ref|| / ||ref||. */
    private static double sgemmError(cublasHandle handle, int m, int n, int k) {
        SplittableRandom rnd = new SplittableRandom(System.nanoTime());
        float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) (rnd.nextDouble() * 2 - 1);
        for (int i = 0; i < b.length; i++) b[i] = (float) (rnd.nextDouble() * 2 - 1);
        CUdeviceptr da = new CUdeviceptr(), db = new CUdeviceptr(), dc = new CUdeviceptr();
        cuMemAlloc(da, 4L * a.length);
        cuMemAlloc(db, 4L * b.length);
        cuMemAlloc(dc, 4L * c.length);
        try {
            cuMemcpyHtoD(da, Pointer.to(a), 4L * a.length);
            cuMemcpyHtoD(db, Pointer.to(b), 4L * b.length);
            cuCtxSynchronize();
            JCublas2.cublasSgemm(handle, cublasOperation.CUBLAS_OP_N, cublasOperation.CUBLAS_OP_N, m, n, k,
                    Pointer.to(new float[] {1f}), da, m, db, k, Pointer.to(new float[] {0f}), dc, m);
            cuCtxSynchronize();
            cuMemcpyDtoH(Pointer.to(c), dc, 4L * c.length);
        } finally {
            cuMemFree(da);
            cuMemFree(db);
            cuMemFree(dc);
        }
        double num = 0, den = 0;
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                double ref = 0;
                for (int p = 0; p < k; p++) ref += (double) a[i + p * m] * b[p + j * k];
                double d = c[i + j * m] - ref;
                num += d * d;
                den += ref * ref;
            }
        }
        return Math.sqrt(num / den);
    }

    private CublasProbe() {
    }
}
