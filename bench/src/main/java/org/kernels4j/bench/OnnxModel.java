package org.kernels4j.bench;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes an ONNX {@code ModelProto} of a one-node graph as protobuf bytes, without the protobuf library: the
 * few fields ONNX Runtime needs (IR version, opset import, graph with node, attributes, float initializers,
 * typed inputs and outputs). Field numbers are those of {@code onnx.proto3}.
 */
final class OnnxModel {

    /** ONNX IR version 10 (ONNX 1.16), which ONNX Runtime 1.23 reads. */
    static final long IR_VERSION = 10;

    private static final int FLOAT = 1;
    private static final int ATTR_FLOAT = 1;
    private static final int ATTR_INT = 2;
    private static final int ATTR_INTS = 7;

    private final String opType;
    private final String domain;
    private final long opset;
    private final List<String> nodeInputs = new ArrayList<>();
    private final List<byte[]> attributes = new ArrayList<>();
    private final List<byte[]> initializers = new ArrayList<>();
    private final List<byte[]> graphInputs = new ArrayList<>();
    private final List<byte[]> graphOutputs = new ArrayList<>();
    private final List<String> outputNames = new ArrayList<>();

    /** A graph of one {@code opType} node of {@code domain} ("" for the default ONNX domain) at {@code opset}. */
    OnnxModel(String opType, String domain, long opset) {
        this.opType = opType;
        this.domain = domain;
        this.opset = opset;
    }

    /** A float graph input, fed at run time, also the node's next input. */
    OnnxModel input(String name, long... dims) {
        nodeInputs.add(name);
        graphInputs.add(valueInfo(name, dims));
        return this;
    }

    /** A float constant (initializer), also the node's next input. */
    OnnxModel constant(String name, float[] data, long... dims) {
        nodeInputs.add(name);
        Proto t = new Proto();
        for (long d : dims) {
            t.varint(1, d);
        }
        t.varint(2, FLOAT);
        t.string(8, name);
        ByteBuffer raw = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        raw.asFloatBuffer().put(data);
        t.bytes(9, raw.array());
        initializers.add(t.toByteArray());
        return this;
    }

    /** The node's next output, a float graph output. */
    OnnxModel output(String name, long... dims) {
        outputNames.add(name);
        graphOutputs.add(valueInfo(name, dims));
        return this;
    }

    OnnxModel attr(String name, long value) {
        Proto a = new Proto();
        a.string(1, name);
        a.varint(3, value);
        a.varint(20, ATTR_INT);
        attributes.add(a.toByteArray());
        return this;
    }

    OnnxModel attr(String name, float value) {
        Proto a = new Proto();
        a.string(1, name);
        a.fixed32(2, Float.floatToRawIntBits(value));
        a.varint(20, ATTR_FLOAT);
        attributes.add(a.toByteArray());
        return this;
    }

    OnnxModel attr(String name, long[] values) {
        Proto a = new Proto();
        a.string(1, name);
        for (long v : values) {
            a.varint(8, v);
        }
        a.varint(20, ATTR_INTS);
        attributes.add(a.toByteArray());
        return this;
    }

    /** The serialized ModelProto. */
    byte[] toByteArray() {
        Proto node = new Proto();
        for (String in : nodeInputs) {
            node.string(1, in);
        }
        for (String out : outputNames) {
            node.string(2, out);
        }
        node.string(3, opType.toLowerCase(java.util.Locale.ROOT));
        node.string(4, opType);
        for (byte[] a : attributes) {
            node.bytes(5, a);
        }
        if (!domain.isEmpty()) {
            node.string(7, domain);
        }
        Proto graph = new Proto();
        graph.bytes(1, node.toByteArray());
        graph.string(2, "kernels4j-bench-" + opType);
        for (byte[] t : initializers) {
            graph.bytes(5, t);
        }
        for (byte[] vi : graphInputs) {
            graph.bytes(11, vi);
        }
        for (byte[] vi : graphOutputs) {
            graph.bytes(12, vi);
        }
        Proto model = new Proto();
        model.varint(1, IR_VERSION);
        model.string(2, "kernels4j-bench");
        model.bytes(7, graph.toByteArray());
        Proto opsetId = new Proto();
        opsetId.string(1, domain);
        opsetId.varint(2, opset);
        model.bytes(8, opsetId.toByteArray());
        if (!domain.isEmpty()) {
            // the graph's value types come from the default domain
            Proto onnx = new Proto();
            onnx.string(1, "");
            onnx.varint(2, 17);
            model.bytes(8, onnx.toByteArray());
        }
        return model.toByteArray();
    }

    private static byte[] valueInfo(String name, long[] dims) {
        Proto shape = new Proto();
        for (long d : dims) {
            Proto dim = new Proto();
            dim.varint(1, d);
            shape.bytes(1, dim.toByteArray());
        }
        Proto tensor = new Proto();
        tensor.varint(1, FLOAT);
        tensor.bytes(2, shape.toByteArray());
        Proto type = new Proto();
        type.bytes(1, tensor.toByteArray());
        Proto vi = new Proto();
        vi.string(1, name);
        vi.bytes(2, type.toByteArray());
        return vi.toByteArray();
    }

    /** Protobuf wire format: varints, length-delimited fields and fixed 32-bit fields. */
    private static final class Proto {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        void varint(int field, long value) {
            raw((long) field << 3);
            raw(value);
        }

        void fixed32(int field, int bits) {
            raw(((long) field << 3) | 5);
            for (int i = 0; i < 4; i++) {
                out.write((bits >>> (8 * i)) & 0xff);
            }
        }

        void string(int field, String s) {
            bytes(field, s.getBytes(StandardCharsets.UTF_8));
        }

        void bytes(int field, byte[] b) {
            raw(((long) field << 3) | 2);
            raw(b.length);
            out.writeBytes(b);
        }

        private void raw(long v) {
            while ((v & ~0x7fL) != 0) {
                out.write((int) ((v & 0x7f) | 0x80));
                v >>>= 7;
            }
            out.write((int) v);
        }

        byte[] toByteArray() {
            return out.toByteArray();
        }
    }
}
