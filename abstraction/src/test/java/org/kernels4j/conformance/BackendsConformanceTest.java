package org.kernels4j.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.kernels4j.Backend;
import org.kernels4j.BackendStatus;
import org.kernels4j.Backends;
import org.kernels4j.Device;

/** Discovery of the backend under test through {@link Backends}: statuses, lookup by name, its devices. */
class BackendsConformanceTest {

    @BeforeAll
    static void backend() {
        ConformanceBackend.assumeAvailable();
    }

    private static Backend underTest() {
        return Backends.require(ConformanceBackend.backendName());
    }

    @Test
    void statusesReportTheBackendAsAvailable() {
        String name = ConformanceBackend.backendName();
        List<BackendStatus> all = Backends.statuses();
        BackendStatus s = all.stream().filter(x -> x.name().equals(name)).findFirst().orElseThrow();
        assertTrue(s.isAvailable());
        assertEquals(null, s.unavailableReason());
        assertTrue(s.asOptional().isPresent());
        assertTrue(s.toString().contains(name));
        assertSame(s.backend(), underTest());
        assertSame(all, Backends.statuses(), "discovery runs once");
        for (BackendStatus other : all) {
            assertTrue(other.isAvailable() == (other.unavailableReason() == null),
                    "a status is either available or has a reason: " + other);
            if (!other.isAvailable()) {
                assertFalse(other.unavailableReason().isBlank(), "an unavailable backend must say why: " + other);
            }
        }
    }

    @Test
    void lookupByName() {
        Backend b = underTest();
        assertEquals(ConformanceBackend.backendName(), b.name());
        assertSame(b, Backends.find(b.name()).orElseThrow());
        assertSame(b, Backends.find(b.name().toUpperCase(java.util.Locale.ROOT)).orElseThrow(), "names are case-insensitive");
        assertTrue(Backends.available().contains(b));
        assertTrue(Backends.find("no-such-backend").isEmpty());
        IllegalStateException missing = assertThrows(IllegalStateException.class, () -> Backends.require("no-such-backend"));
        assertTrue(missing.getMessage().contains("no-such-backend"), missing.getMessage());
        IllegalArgumentException nul = assertThrows(IllegalArgumentException.class, () -> Backends.find(null));
        assertTrue(nul.getMessage().startsWith("name:"), nul.getMessage());
        Device best = Backends.defaultDevice();
        assertSame(Backends.available().get(0).defaultDevice(), best);
    }

    @Test
    void devicesAreNumberedAndBelongToTheBackend() {
        Backend b = underTest();
        List<Device> ds = b.devices();
        assertFalse(ds.isEmpty());
        assertSame(ds.get(0), b.defaultDevice());
        Set<String> ids = new HashSet<>();
        for (int i = 0; i < ds.size(); i++) {
            Device d = ds.get(i);
            assertEquals(i, d.index());
            assertSame(b, d.backend());
            assertTrue(ids.add(d.id()), "device ids must be unique: " + d.id());
            assertTrue(d instanceof org.kernels4j.spi.DeviceImplementation,
                    "every device of a backend implements spi.DeviceImplementation");
        }
    }
}
