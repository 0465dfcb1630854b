package org.kernels4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

class KernelManifestTest {

    private static final String TEXT = """
            # comment
            format 1
            nvcc 13.0.88
            module layernorm cuda ptx=compute_80 cubins=sm_80,sm_86,sm_89,sm_90
            module attention cuda ptx=compute_80 cubins=sm_80,sm_90a
            module dialect_ln dialect ptx=compute_80 cubins=sm_80
            entry layernorm ln_fwd_v1_f32 u64,u64,u32,f32 ptx,sm_80,sm_86,sm_89,sm_90
            entry attention attn_fwd u64,b8:24 ptx,sm_80,sm_90a
            entry attention attn_fwd_hopper u64 sm_90a
            entry dialect_ln ln_forward - ptx,sm_80
            """;

    @Test
    void parsesModulesEntriesAndParameters() {
        KernelManifest m = KernelManifest.parse(TEXT);
        assertEquals("13.0.88", m.nvccVersion());
        assertEquals(13, m.nvccMajor());
        assertEquals(List.of("u64", "u64", "u32", "f32"), m.entry("ln_fwd_v1_f32").params());
        assertEquals(List.of("u64", "b8:24"), m.entry("attention:attn_fwd").params());
        assertEquals(List.of(), m.entry("dialect_ln:ln_forward").params());
        assertEquals("layernorm", m.entry("ln_fwd_v1_f32").module().name());
    }

    @Test
    void dialectEntriesNeedTheirModuleName() {
        KernelManifest m = KernelManifest.parse(TEXT);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.entry("ln_forward"));
        assertTrue(e.getMessage().contains("no CUDA kernel 'ln_forward'"), e.getMessage());
    }

    @Test
    void rejectsDuplicatesAndMalformedLines() {
        String dup = TEXT + "entry attention ln_fwd_v1_f32 u64 ptx\n";
        assertTrue(assertThrows(IllegalStateException.class, () -> KernelManifest.parse(dup)).getMessage()
                .contains("defined by two modules"));
        assertTrue(assertThrows(IllegalStateException.class, () -> KernelManifest.parse("format 2\nnvcc 13.0\n"))
                .getMessage().contains("format 2"));
        assertTrue(assertThrows(IllegalStateException.class, () -> KernelManifest.parse("format 1\nnvcc 13.0\nentry\n"))
                .getMessage().contains("line 3"));
        assertTrue(assertThrows(IllegalStateException.class, () -> KernelManifest.parse("format 1\n"))
                .getMessage().contains("no nvcc"));
    }

    @Test
    void picksTheCubinOfTheDeviceElseAnOlderMinorElseThePtx() {
        KernelManifest m = KernelManifest.parse(TEXT);
        KernelManifest.Entry ln = m.entry("ln_fwd_v1_f32");
        assertEquals("layernorm.sm_90.cubin", KernelManifest.imageFor(ln, 9, 0));
        assertEquals("layernorm.sm_86.cubin", KernelManifest.imageFor(ln, 8, 6));
        assertEquals("layernorm.sm_86.cubin", KernelManifest.imageFor(ln, 8, 7), "sm_86 code runs on sm_87");
        assertEquals("layernorm.sm_89.cubin", KernelManifest.imageFor(ln, 8, 9));
        assertEquals("layernorm.ptx", KernelManifest.imageFor(ln, 10, 0), "Blackwell: JIT from PTX");
        assertEquals("layernorm.ptx", KernelManifest.imageFor(ln, 12, 0));
        KernelManifest.Entry attn = m.entry("attn_fwd");
        assertEquals("attention.sm_90a.cubin", KernelManifest.imageFor(attn, 9, 0));
        assertEquals("attention.sm_80.cubin", KernelManifest.imageFor(attn, 8, 9));
        assertEquals("attention.ptx", KernelManifest.imageFor(attn, 10, 0), "sm_90a code runs on 9.0 only");
        KernelManifest.Entry hopper = m.entry("attn_fwd_hopper");
        assertEquals("attention.sm_90a.cubin", KernelManifest.imageFor(hopper, 9, 0));
        assertNull(KernelManifest.imageFor(hopper, 8, 0), "an sm_90a-only kernel has no image for sm_80");
    }
}
