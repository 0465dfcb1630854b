package org.kernels4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.kernels4j.selftest.ReferenceBackendProvider;
import org.kernels4j.selftest.UnavailableBackendProvider;

/** Discovery with abstraction's two test-only providers: one that starts, one that cannot. */
class BackendsTest {

    @Test
    void anUnavailableBackendIsReportedWithItsReasonAndSkipped() {
        BackendStatus broken = Backends.statuses().stream()
                .filter(s -> s.name().equals(UnavailableBackendProvider.NAME)).findFirst().orElseThrow();
        assertFalse(broken.isAvailable());
        assertTrue(broken.unavailableReason().contains(UnavailableBackendProvider.REASON), broken.unavailableReason());
        assertTrue(broken.toString().contains("unavailable"));
        assertTrue(Backends.find(UnavailableBackendProvider.NAME).isEmpty());
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Backends.require(UnavailableBackendProvider.NAME));
        assertTrue(e.getMessage().contains(UnavailableBackendProvider.REASON), e.getMessage());
    }

    @Test
    void availableBackendsComeBestFirst() {
        Backend b = Backends.require(ReferenceBackendProvider.NAME);
        assertEquals(java.util.List.of(b), Backends.available());
        assertSame(b.defaultDevice(), Backends.defaultDevice());
        assertEquals(ReferenceBackendProvider.NAME, Backends.statuses().get(0).name(), "higher priority first");
    }
}
