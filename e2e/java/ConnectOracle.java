// Runs test cases through Apache Kafka Connect's own converters, transforms and predicates,
// so that Ferry's implementations can be compared with them (e2e/tests/connect_compat.rs).
//
// Input: one JSON object per line on stdin. Output: one JSON object per line on stdout, in
// the same order, each with the case's "id" and either a result or an "error".
//
// Case kinds ("op"):
//   convert:   {"in": converter, "out": converter, "bytes": base64 | null}
//              decodes the bytes with "in", encodes the result with "out";
//              result {"bytes": base64 | null, "again": base64 | null}, "again" being
//              the result bytes read and written once more with "out".
//   header:    like convert, with header converters.
//   transform: {"smt": {"class", "config"}, "predicate": {"class", "config"} | null,
//               "negate": bool, "keyConverter": converter, "valueConverter": converter,
//               "headerConverter": converter, "outHeaderConverter": converter,
//               "record": {"topic", "partition", "offset", "timestamp",
//                          "key": base64 | null, "value": base64 | null,
//                          "headers": [[name, base64 | null], ...]}}
//              decodes the record, applies the transform when the predicate (if any) says so,
//              encodes the result; result {"dropped": true} or the encoded record.
// A converter is {"type": "json" | "string" | "byteArray" | "simple", "config": {...}}.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.connect.converters.ByteArrayConverter;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.storage.Converter;
import org.apache.kafka.connect.storage.HeaderConverter;
import org.apache.kafka.connect.storage.SimpleHeaderConverter;
import org.apache.kafka.connect.storage.StringConverter;
import org.apache.kafka.connect.transforms.Transformation;
import org.apache.kafka.connect.transforms.predicates.Predicate;

public class ConnectOracle {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode c = MAPPER.readTree(line);
            ObjectNode result = MAPPER.createObjectNode();
            result.put("id", c.path("id").asText());
            try {
                switch (c.path("op").asText()) {
                    case "convert":
                        convert(c, result);
                        break;
                    case "header":
                        header(c, result);
                        break;
                    case "transform":
                        transform(c, result);
                        break;
                    default:
                        throw new IllegalArgumentException("unknown op " + c.path("op"));
                }
            } catch (Throwable t) {
                result.removeAll();
                result.put("id", c.path("id").asText());
                result.put("error", t.getClass().getSimpleName() + ": " + t.getMessage());
            }
            out.println(MAPPER.writeValueAsString(result));
        }
    }

    private static Map<String, Object> configOf(JsonNode node) {
        Map<String, Object> config = new HashMap<>();
        if (node != null) {
            Iterator<Map.Entry<String, JsonNode>> it = node.fields();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                config.put(e.getKey(), e.getValue().asText());
            }
        }
        return config;
    }

    private static byte[] bytesOf(JsonNode node) {
        return node == null || node.isNull() ? null : Base64.getDecoder().decode(node.asText());
    }

    private static void putBytes(ObjectNode target, String field, byte[] bytes) {
        if (bytes == null) {
            target.putNull(field);
        } else {
            target.put(field, Base64.getEncoder().encodeToString(bytes));
        }
    }

    private static Converter converter(JsonNode spec, boolean isKey) {
        Map<String, Object> config = configOf(spec.get("config"));
        Converter converter;
        switch (spec.path("type").asText()) {
            case "json":
                converter = new JsonConverter();
                break;
            case "string":
                converter = new StringConverter();
                break;
            case "byteArray":
                converter = new ByteArrayConverter();
                break;
            default:
                throw new IllegalArgumentException("unknown converter " + spec);
        }
        converter.configure(config, isKey);
        return converter;
    }

    private static HeaderConverter headerConverter(JsonNode spec) {
        Map<String, Object> config = configOf(spec.get("config"));
        config.putIfAbsent("converter.type", "header");
        HeaderConverter converter;
        switch (spec.path("type").asText()) {
            case "json":
                converter = new JsonConverter();
                break;
            case "string":
                converter = new StringConverter();
                break;
            case "byteArray":
                converter = new ByteArrayConverter();
                break;
            case "simple":
                converter = new SimpleHeaderConverter();
                break;
            default:
                throw new IllegalArgumentException("unknown header converter " + spec);
        }
        converter.configure(config);
        return converter;
    }

    private static void convert(JsonNode c, ObjectNode result) {
        Converter in = converter(c.get("in"), false);
        Converter out = converter(c.get("out"), false);
        SchemaAndValue data = in.toConnectData("topic", bytesOf(c.get("bytes")));
        byte[] written = out.fromConnectData("topic", data.schema(), data.value());
        putBytes(result, "bytes", written);
        // What "out" makes of its own output: read back and written again.
        try {
            SchemaAndValue again = out.toConnectData("topic", written);
            putBytes(result, "again", out.fromConnectData("topic", again.schema(), again.value()));
        } catch (RuntimeException e) {
            result.put("againError", e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    private static void header(JsonNode c, ObjectNode result) {
        HeaderConverter in = headerConverter(c.get("in"));
        HeaderConverter out = headerConverter(c.get("out"));
        SchemaAndValue data = in.toConnectHeader("topic", "h", bytesOf(c.get("bytes")));
        if (data == null) {
            data = SchemaAndValue.NULL;
        }
        putBytes(result, "bytes", out.fromConnectHeader("topic", "h", data.schema(), data.value()));
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void transform(JsonNode c, ObjectNode result) throws Exception {
        Converter keyConverter = converter(c.get("keyConverter"), true);
        Converter valueConverter = converter(c.get("valueConverter"), false);
        HeaderConverter headerIn = headerConverter(c.get("headerConverter"));
        HeaderConverter headerOut = headerConverter(c.get("outHeaderConverter"));
        JsonNode r = c.get("record");
        String topic = r.path("topic").asText();
        SchemaAndValue key = keyConverter.toConnectData(topic, bytesOf(r.get("key")));
        SchemaAndValue value = valueConverter.toConnectData(topic, bytesOf(r.get("value")));
        ConnectHeaders headers = new ConnectHeaders();
        for (JsonNode h : r.path("headers")) {
            String name = h.get(0).asText();
            headers.add(name, headerIn.toConnectHeader(topic, name, bytesOf(h.get(1))));
        }
        Integer partition = r.hasNonNull("partition") ? r.get("partition").asInt() : null;
        long offset = r.hasNonNull("offset") ? r.get("offset").asLong() : -1L;
        Long timestamp = r.hasNonNull("timestamp") ? r.get("timestamp").asLong() : null;
        SinkRecord record = new SinkRecord(topic, partition == null ? 0 : partition,
                key.schema(), key.value(), value.schema(), value.value(), offset, timestamp,
                timestamp == null ? TimestampType.NO_TIMESTAMP_TYPE : TimestampType.CREATE_TIME, headers);

        JsonNode smt = c.get("smt");
        Transformation<SinkRecord> transformation =
                (Transformation<SinkRecord>) Class.forName(smt.path("class").asText()).getDeclaredConstructor().newInstance();
        transformation.configure(configOf(smt.get("config")));
        boolean apply = true;
        JsonNode p = c.get("predicate");
        if (p != null && !p.isNull()) {
            Predicate<SinkRecord> predicate =
                    (Predicate<SinkRecord>) Class.forName(p.path("class").asText()).getDeclaredConstructor().newInstance();
            predicate.configure(configOf(p.get("config")));
            apply = predicate.test(record) ^ c.path("negate").asBoolean(false);
        }
        SinkRecord out = apply ? transformation.apply(record) : record;
        if (out == null) {
            result.put("dropped", true);
            return;
        }
        result.put("topic", out.topic());
        if (out.timestamp() == null) {
            result.putNull("timestamp");
        } else {
            result.put("timestamp", out.timestamp());
        }
        putBytes(result, "key", keyConverter.fromConnectData(out.topic(), out.keySchema(), out.key()));
        putBytes(result, "value", valueConverter.fromConnectData(out.topic(), out.valueSchema(), out.value()));
        ArrayNode outHeaders = result.putArray("headers");
        for (Header h : out.headers()) {
            ArrayNode pair = outHeaders.addArray();
            pair.add(h.key());
            byte[] bytes = headerOut.fromConnectHeader(out.topic(), h.key(), h.schema(), h.value());
            if (bytes == null) {
                pair.addNull();
            } else {
                pair.add(Base64.getEncoder().encodeToString(bytes));
            }
        }
    }
}
