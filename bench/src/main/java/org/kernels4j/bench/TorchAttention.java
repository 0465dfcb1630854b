package org.kernels4j.bench;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.JniUtils;

/**
 * PyTorch's {@code scaled_dot_product_attention} for the DJL peer. DJL 0.36 has no binding for it, so this
 * writes a one-method TorchScript module in the archive format {@code torch.jit.save} produces (the module's
 * TorchScript source, its pickled object, an empty constants table) and loads it through DJL; libtorch
 * compiles the source at load. SDPA then picks its own CPU kernel (fused flash attention where it applies, the
 * math path otherwise), and autograd runs through it as in Python.
 */
final class TorchAttention {

    private TorchAttention() {
    }

    /** A module whose {@code forward(q, k, v)} is SDPA with the given causal flag, default scale and GQA flag. */
    static PtSymbolBlock load(NDManager manager, boolean causal, boolean groupedQuery) {
        byte[] archive = archive(causal, groupedQuery);
        try {
            return JniUtils.loadModule((PtNDManager) manager, new ByteArrayInputStream(archive), false, false);
        } catch (IOException e) {
            throw new UncheckedIOException("loading the TorchScript SDPA module: " + e.getMessage(), e);
        }
    }

    /** The TorchScript archive (a zip of {@code <name>/code/__torch__.py}, {@code data.pkl}, ...). */
    static byte[] archive(boolean causal, boolean groupedQuery) {
        String code = """
                class Sdpa(Module):
                  __parameters__ = []
                  __buffers__ = []
                  training : bool
                  def forward(self: __torch__.Sdpa,
                    q: Tensor,
                    k: Tensor,
                    v: Tensor) -> Tensor:
                    _0 = torch.scaled_dot_product_attention(q, k, v, None, 0., %s, scale=None, enable_gqa=%s)
                    return _0
                """.formatted(causal ? "True" : "False", groupedQuery ? "True" : "False");
        // pickle protocol 2 of the module object: GLOBAL __torch__.Sdpa, NEWOBJ(), BUILD({'training': True})
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        data.writeBytes(new byte[] {(byte) 0x80, 2});
        data.writeBytes("c__torch__\nSdpa\n".getBytes(StandardCharsets.US_ASCII));
        data.writeBytes(new byte[] {'q', 0, ')', (byte) 0x81, '}', '(', 'X', 8, 0, 0, 0});
        data.writeBytes("training".getBytes(StandardCharsets.US_ASCII));
        data.writeBytes(new byte[] {(byte) 0x88, 'u', 'b', '.'});
        ByteArrayOutputStream zip = new ByteArrayOutputStream();
        try (ZipOutputStream z = new ZipOutputStream(zip)) {
            stored(z, "sdpa/data.pkl", data.toByteArray());
            stored(z, "sdpa/code/__torch__.py", code.getBytes(StandardCharsets.UTF_8));
            // an empty tuple: the module has no tensor constants
            stored(z, "sdpa/constants.pkl", new byte[] {(byte) 0x80, 2, ')', '.'});
            stored(z, "sdpa/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return zip.toByteArray();
    }

    /** libtorch's archive reader wants uncompressed entries. */
    private static void stored(ZipOutputStream z, String name, byte[] b) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(b.length);
        e.setCompressedSize(b.length);
        CRC32 crc = new CRC32();
        crc.update(b);
        e.setCrc(crc.getValue());
        z.putNextEntry(e);
        z.write(b);
        z.closeEntry();
    }
}
