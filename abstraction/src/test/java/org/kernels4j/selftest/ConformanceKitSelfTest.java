package org.kernels4j.selftest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectPackage;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.platform.engine.DiscoverySelector;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.kernels4j.DType;
import org.kernels4j.conformance.ConformanceBackend;

/**
 * Runs the conformance suite (the test-jar's classes) inside abstraction against the test-only
 * {@link ReferenceBackendProvider} backend, to show that the kit passes correct results and fails each
 * kind of wrong one for the right reason, and that an unavailable backend skips while a misconfiguration
 * fails. Without this, a check that can never fail would go unnoticed: a real backend passing proves little
 * about the checks themselves.
 */
class ConformanceKitSelfTest {

    private static final String OP_CLASSES_PACKAGE = "org.kernels4j.conformance";

    /** What one suite run did, per test (display path) and per container. */
    record Run(Map<String, TestExecutionResult> tests, List<String> abortedContainers, List<String> failedContainers) {
        List<String> failed(Predicate<String> which) {
            List<String> out = new ArrayList<>();
            tests.forEach((name, r) -> {
                if (r.getStatus() == TestExecutionResult.Status.FAILED && which.test(name)) {
                    out.add(name + " -> " + r.getThrowable().map(Throwable::getMessage).orElse(""));
                }
            });
            return out;
        }

        long count(Predicate<String> which) {
            return tests.keySet().stream().filter(which).count();
        }

        long succeeded(Predicate<String> which) {
            return tests.entrySet().stream()
                    .filter(e -> which.test(e.getKey()) && e.getValue().getStatus() == TestExecutionResult.Status.SUCCESSFUL)
                    .count();
        }
    }

    private static Run run(String backend, ReferenceKernels.Fault fault, DiscoverySelector... selectors) {
        String previous = System.getProperty(ConformanceBackend.PROPERTY);
        ReferenceKernels.fault = fault;
        if (backend == null) {
            System.clearProperty(ConformanceBackend.PROPERTY);
        } else {
            System.setProperty(ConformanceBackend.PROPERTY, backend);
        }
        Map<String, TestExecutionResult> tests = new ConcurrentHashMap<>();
        List<String> aborted = new ArrayList<>();
        List<String> failedContainers = new ArrayList<>();
        try {
            var request = LauncherDiscoveryRequestBuilder.request().selectors(selectors).build();
            LauncherFactory.create().execute(request, new TestExecutionListener() {
                @Override
                public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                    String name = id.getDisplayName() + " @ " + id.getUniqueId();
                    if (id.isTest()) {
                        tests.put(name, result);
                    } else if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
                        aborted.add(name);
                    } else if (result.getStatus() == TestExecutionResult.Status.FAILED) {
                        failedContainers.add(name + " -> " + result.getThrowable().map(Throwable::toString).orElse(""));
                    }
                }
            });
        } finally {
            ReferenceKernels.fault = ReferenceKernels.Fault.NONE;
            if (previous == null) {
                System.clearProperty(ConformanceBackend.PROPERTY);
            } else {
                System.setProperty(ConformanceBackend.PROPERTY, previous);
            }
        }
        return new Run(tests, aborted, failedContainers);
    }

    private static DiscoverySelector[] opClasses(String... simpleNames) {
        DiscoverySelector[] s = new DiscoverySelector[simpleNames.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = selectClass(OP_CLASSES_PACKAGE + "." + simpleNames[i]);
        }
        return s;
    }

    private static final Predicate<String> ALL = n -> true;
    private static final Predicate<String> FP32 = n -> n.contains(" float32 ");
    private static final Predicate<String> HALF = n -> n.contains(" float16 ") || n.contains(" bfloat16 ");

    @AfterEach
    void reset() {
        ReferenceKernels.fault = ReferenceKernels.Fault.NONE;
        ReferenceBackendProvider.dtypes = EnumSet.allOf(DType.class);
    }

    @Test
    void wholeSuitePassesOnCorrectResults() {
        Run r = run(ReferenceBackendProvider.NAME, ReferenceKernels.Fault.NONE, selectPackage(OP_CLASSES_PACKAGE));
        assertEquals(List.of(), r.failed(ALL));
        assertEquals(List.of(), r.failedContainers());
        assertEquals(List.of(), r.abortedContainers());
        assertTrue(r.succeeded(ALL) >= 500, "expected at least 500 passing cases, got " + r.succeeded(ALL));
    }

    @Test
    void plainComputationsPassAndThreeTimesTheirErrorFailsOnlyInHalfPrecision() {
        String[] ops = {"LayerNormConformanceTest", "AttentionConformanceTest", "Conv2dConformanceTest"};
        Run plain = run(ReferenceBackendProvider.NAME, ReferenceKernels.Fault.PLAIN, opClasses(ops));
        assertEquals(List.of(), plain.failed(ALL), "a plain computation in the dtype must pass its own tolerance");
        Run triple = run(ReferenceBackendProvider.NAME, ReferenceKernels.Fault.TRIPLE_PLAIN_ERROR, opClasses(ops));
        // fp32: three times a plain fp32 computation's error still passes, so 2e-5 leaves that margin.
        assertEquals(List.of(), triple.failed(FP32));
        List<String> half = triple.failed(HALF);
        assertTrue(half.size() >= triple.count(HALF) * 3 / 4, "expected most 16-bit cases to fail, got " + half.size()
                + " of " + triple.count(HALF));
        assertTrue(half.stream().allMatch(m -> m.contains("exceeds tolerance")), half.toString());
    }

    @Test
    void unwrittenElementsFail() {
        ReferenceBackendProvider.dtypes = EnumSet.of(DType.FLOAT32);
        Run r = run(ReferenceBackendProvider.NAME, ReferenceKernels.Fault.SKIP_LAST_ELEMENT,
                opClasses("LayerNormConformanceTest", "AttentionConformanceTest", "Conv2dConformanceTest"));
        List<String> failed = r.failed(ALL);
        assertTrue(failed.size() >= r.count(ALL) * 9 / 10, "expected nearly every case to fail, got " + failed.size()
                + " of " + r.count(ALL));
        // Outputs of the allocating variants are not poisoned (the op allocates them): they fail on the value.
        assertTrue(failed.stream().allMatch(m -> m.contains("never written") || m.contains("allocatingVariants")),
                failed.toString());
    }

    @Test
    void fp32ErrorsOfFiveTimesTheToleranceFail() {
        ReferenceBackendProvider.dtypes = EnumSet.of(DType.FLOAT32);
        Run r = run(ReferenceBackendProvider.NAME, ReferenceKernels.Fault.SCALE_BY_1E4,
                opClasses("LayerNormConformanceTest", "AttentionConformanceTest", "Conv2dConformanceTest"));
        List<String> failed = r.failed(FP32);
        // The survivors have empty or all-zero outputs (batch 0, Nk = 0, ...) or values so small that 1e-4 of
        // them is under the absolute floor (layer norm with D = 1 outputs beta).
        assertTrue(failed.size() >= r.count(FP32) * 85 / 100, "expected nearly every fp32 case to fail, got "
                + failed.size() + " of " + r.count(FP32) + "; passing: " + r.tests().keySet().stream()
                .filter(FP32).filter(n -> r.failed(x -> x.equals(n)).isEmpty()).toList());
        assertTrue(failed.stream().allMatch(m -> m.contains("exceeds tolerance")), failed.toString());
    }

    @Test
    void gradientsInconsistentWithTheForwardFailTheFiniteDifferenceCheck() {
        Run r = run(ReferenceBackendProvider.NAME, ReferenceKernels.Fault.SCALE_GRADIENTS_2PCT,
                opClasses("GradientCheckConformanceTest"));
        List<String> failed = r.failed(ALL);
        assertEquals(r.count(ALL), failed.size(), "every gradient check must fail: " + failed);
        assertTrue(failed.stream().allMatch(m -> m.contains("finite differences")), failed.toString());
    }

    @Test
    void unavailableBackendSkipsEveryClassWithItsReason() {
        Run r = run(UnavailableBackendProvider.NAME, ReferenceKernels.Fault.NONE, selectPackage(OP_CLASSES_PACKAGE));
        assertEquals(List.of(), r.failed(ALL));
        assertEquals(List.of(), r.failedContainers());
        assertEquals(0, r.count(ALL), "no case may run without the backend");
        assertTrue(r.abortedContainers().size() >= 8, "every conformance class must be skipped: " + r.abortedContainers());
    }

    @Test
    void requiredUnavailableBackendFails() {
        System.setProperty(ConformanceBackend.REQUIRED_PROPERTY, "true");
        try {
            Run r = run(UnavailableBackendProvider.NAME, ReferenceKernels.Fault.NONE, opClasses("LayerNormConformanceTest"));
            assertEquals(1, r.failedContainers().size(), r.failedContainers().toString());
            assertTrue(r.failedContainers().get(0).contains(UnavailableBackendProvider.REASON), r.failedContainers().toString());
        } finally {
            System.clearProperty(ConformanceBackend.REQUIRED_PROPERTY);
        }
    }

    @Test
    void missingOrUnknownBackendFails() {
        Run unknown = run("no-such-backend", ReferenceKernels.Fault.NONE, opClasses("LayerNormConformanceTest"));
        assertEquals(1, unknown.failedContainers().size(), unknown.failedContainers().toString());
        assertTrue(unknown.failedContainers().get(0).contains("not on the class path"));
        Run unset = run(null, ReferenceKernels.Fault.NONE, opClasses("LayerNormConformanceTest"));
        assertEquals(1, unset.failedContainers().size(), unset.failedContainers().toString());
        assertTrue(unset.failedContainers().get(0).contains(ConformanceBackend.PROPERTY));
    }
}
