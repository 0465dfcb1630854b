package org.kernels4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

class KernelSourceTest {

    private static final String CODE = "__kernel void k(__global float* a) { a[get_global_id(0)] = 1; }";

    @Test
    void ofHasNoDefines() {
        KernelSource s = KernelSource.of("ones", CODE, "k");
        assertEquals(Map.of(), s.defines());
        assertEquals("k", s.entryPoint());
    }

    @Test
    void defineReturnsANewSourceWithSortedDefines() {
        KernelSource s = KernelSource.of("ones", CODE, "k");
        KernelSource d = s.define("TILE", 16).define("A_FIRST", "1.0f");
        assertEquals(Map.of(), s.defines(), "define must not change the original");
        assertEquals(List.of("A_FIRST", "TILE"), List.copyOf(d.defines().keySet()));
        assertEquals("16", d.defines().get("TILE"));
        assertEquals(d, KernelSource.of("ones", CODE, "k").define("A_FIRST", "1.0f").define("TILE", 16),
                "equal sources compare equal whatever the order of the defines");
    }

    @Test
    void definesAreCopiedAndUnmodifiable() {
        Map<String, String> m = new HashMap<>(Map.of("TILE", "8"));
        KernelSource s = new KernelSource("ones", CODE, "k", m);
        m.put("TILE", "32");
        assertEquals("8", s.defines().get("TILE"));
        assertThrows(UnsupportedOperationException.class, () -> s.defines().put("X", "1"));
        assertEquals(Map.of(), new KernelSource("ones", CODE, "k", null).defines());
    }

    @Test
    void invalidFieldsAreRejectedNamingThem() {
        assertName("name", () -> new KernelSource(null, CODE, "k", null));
        assertName("name", () -> new KernelSource(" ", CODE, "k", null));
        assertName("code", () -> new KernelSource("n", "", "k", null));
        assertName("entryPoint", () -> new KernelSource("n", CODE, "2k", null));
        assertName("entryPoint", () -> new KernelSource("n", CODE, null, null));
        assertName("defines", () -> KernelSource.of("n", CODE, "k").define("BAD-NAME", 1));
        assertName("defines", () -> KernelSource.of("n", CODE, "k").define("X", "1 + 2"));
    }

    private static void assertName(String name, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().startsWith(name + ":"), e.getMessage());
    }
}
