package org.kernels4j.autotune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.kernels4j.DType;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningLookup;
import org.kernels4j.tuning.TuningSpace;

/**
 * Shipped defaults fall back from the device to its architecture, its vendor, then generic entries; the files
 * kernels4j ships are well formed and current.
 */
class ShippedDefaultsTest {

    static final TuningSpace<Integer> CHAIN = TuningSpace.builder("test.chain", Integer.class).source("chain")
            .parameter("X", 0, 1, 2, 3, 4, 5)
            .constraint("X <= 5", (p, c) -> p.get("X") <= 5).build();
    static final TuningSpace<Integer> CHAIN2 = TuningSpace.builder("test.chain2", Integer.class).source("chain2")
            .parameter("X", 0, 1, 2, 3, 4, 5).build();

    @TempDir
    Path dir;

    final List<String> warnings = new ArrayList<>();

    TuningLookup.Found find(FakeDevice d, TuningSpace<?> s, String bucket) {
        CacheLookup l = new CacheLookup(new TuningCache(dir, warnings::add),
                new ShippedDefaults(getClass().getClassLoader(), warnings::add));
        return l.find(d, s, DType.FLOAT32, bucket).orElse(null);
    }

    @Test
    void deviceThenArchitectureThenVendorThenGeneric() {
        FakeDevice a = new FakeDevice("Chain Device A", "Chain Vendor", "chainarch", "1", 256);
        FakeDevice b = new FakeDevice("Chain Device B", "Chain Vendor", "chainarch", "1", 256);
        FakeDevice c = new FakeDevice("Chain Device C", "Chain Vendor (TM)", "otherarch", "1", 256);
        FakeDevice d = new FakeDevice("Chain Device D", "Other Vendor", "otherarch", "1", 256);
        assertEquals(Parameters.of("X", 1), find(a, CHAIN, "b0").parameters());
        assertEquals(Tuning.Source.SHIPPED, find(a, CHAIN, "b0").source());
        assertTrue(find(a, CHAIN, "b0").origin().contains("device-chain-device-a"), find(a, CHAIN, "b0").origin());
        assertEquals(Parameters.of("X", 2), find(b, CHAIN, "b0").parameters());
        assertEquals(Parameters.of("X", 3), find(c, CHAIN, "b0").parameters());
        assertEquals(Parameters.of("X", 4), find(d, CHAIN, "b0").parameters());
        assertEquals(Parameters.of("X", 5), find(d, CHAIN, "b1").parameters(), "an exact bucket beats '*'");
        assertEquals(Parameters.of("X", 4), find(a, CHAIN2, "b0").parameters(),
                "a device entry for another kernel source is stale; the generic one applies");
        assertTrue(warnings.isEmpty(), warnings.toString());
    }

    @Test
    void aTunedEntryBeatsShippedDefaults() throws Exception {
        FakeDevice a = new FakeDevice("Chain Device A", "Chain Vendor", "chainarch", "1", 256);
        DeviceKey k = DeviceKey.of(a);
        TuningCache.Result r = new TuningCache.Result(Map.of("X", 5), TuningCache.OK, 1.0, 3, false, null,
                java.time.Instant.now().toString());
        new TuningCache(dir, warnings::add).merge(k, List.of(new TuningCache.Entry(k.backend(), k.device(), k.driver(),
                k.library(), CHAIN.sourceHash(), CHAIN.kernelId(), "float32", "b0", "p", true,
                java.time.Instant.now().toString(), List.of(r))));
        assertEquals(Parameters.of("X", 5), find(a, CHAIN, "b0").parameters());
        assertEquals(Tuning.Source.TUNED, find(a, CHAIN, "b0").source());
    }

    @Test
    void invalidShippedParametersAreIgnoredByTheDispatch() {
        // through the ServiceLoader-registered lookup, as a kernel's dispatch sees it: the vendor file ships
        // X=99 for bucket b9, which fails the space's constraint, so the dispatch falls back to the default
        FakeDevice c = new FakeDevice("Chain Device C2", "Chain Vendor", "otherarch", "1", 256);
        Tuning.Resolution ok = Tuning.resolve(c, CHAIN, DType.FLOAT32, "b0");
        assertEquals(Tuning.Source.SHIPPED, ok.source());
        assertEquals(Parameters.of("X", 3), ok.parameters());
        Tuning.Resolution bad = Tuning.resolve(c, CHAIN, DType.FLOAT32, "b9");
        assertEquals(Tuning.Source.DEFAULT, bad.source());
        assertEquals(CHAIN.defaults(), bad.parameters());
    }

    /** The shipped files; each backend's kernel classes, loaded so that their spaces register. */
    static final Map<String, List<String>> SHIPPED = Map.of(
            ShippedDefaults.ROOT + "cuda/device-nvidia-h200.json", List.of("org.kernels4j.cuda.Conv2dCuda"));

    @Test
    void shippedFilesNameRegisteredSpacesWithCandidateValuesForTheCurrentSources() throws Exception {
        ObjectMapper json = new ObjectMapper();
        for (Map.Entry<String, List<String>> f : SHIPPED.entrySet()) {
            for (String c : f.getValue()) {
                Class.forName(c, true, getClass().getClassLoader());
            }
            ShippedDefaults.ShippedFile file;
            try (InputStream in = getClass().getClassLoader().getResourceAsStream(f.getKey())) {
                assertTrue(in != null, f.getKey() + " is not on the class path");
                file = json.readValue(in, ShippedDefaults.ShippedFile.class);
            }
            assertEquals(TuningCache.FORMAT, file.format(), f.getKey());
            assertTrue(!file.entries().isEmpty(), f.getKey());
            for (ShippedDefaults.Shipped e : file.entries()) {
                String where = f.getKey() + ": " + e.kernel() + " " + e.bucket();
                TuningSpace<?> space = Tuning.space(e.kernel()).orElse(null);
                assertTrue(space != null, where + ": no such tuning space");
                // an entry for another source is skipped at dispatch: re-tune (or drop it) when the kernels change
                assertEquals(space.sourceHash(), e.sourceHash(), where + ": tuned for another kernel source");
                DType.parse(e.dtype());
                assertEquals(space.defaults().names(), e.parameters().keySet(), where + ": parameter names");
                for (Map.Entry<String, Integer> p : e.parameters().entrySet()) {
                    assertTrue(space.parameter(p.getKey()).candidates().contains(p.getValue()),
                            where + ": " + p + " is not a candidate of " + space.parameter(p.getKey()));
                }
                DeviceKey h200 = new DeviceKey("cuda", "nvidia-h200", "NVIDIA H200", "580.159.04", "dev", "sm_90",
                        "nvidia");
                ShippedDefaults.Match m = new ShippedDefaults(getClass().getClassLoader(), warnings::add)
                        .find(h200, space, DType.parse(e.dtype()), e.bucket()).orElse(null);
                assertTrue(m != null && m.parameters().equals(Parameters.of(e.parameters())), where + ": " + m);
            }
        }
        assertTrue(warnings.isEmpty(), warnings.toString());
    }
}
