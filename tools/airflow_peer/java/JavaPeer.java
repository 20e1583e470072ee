// A minimal --comm/--logs runtime in Java, for Airflow's JavaCoordinator (no dependencies).
//
// Airflow's JavaCoordinator runs `java -classpath <jars> <jvm_args> <Main-Class> --comm=H:P
// --logs=H:Q`. This runtime connects to both, reads StartupDetails (frame id 0), and runs the
// task it names from example_dag: read_var_conn (GetVariable peer_var, then its value as the
// return_value XCom, then SucceedTask; -Dpeer.variable=NAME asks for another), fail (TaskState failed) or anything else (SucceedTask).
// Frames are a 4-byte big-endian length and a msgpack array [id, body, null]; one JSON log
// line goes to --logs. tools/airflow_peer/java/build.sh compiles it into a JAR whose manifest
// has Main-Class and Airflow-Supervisor-Schema-Version, which the coordinator reads.
import java.io.*;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.*;

public final class JavaPeer {
    private final DataInputStream in;
    private final OutputStream out;
    private int nextId = 1;

    private JavaPeer(Socket comm) throws IOException {
        in = new DataInputStream(new BufferedInputStream(comm.getInputStream()));
        out = comm.getOutputStream();
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (String a : argv) {
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) args.put(a.substring(2, eq), a.substring(eq + 1));
        }
        Socket comm = connect(args.get("comm"));
        Socket logs = connect(args.get("logs"));
        JavaPeer peer = new JavaPeer(comm);
        Object[] first = (Object[]) peer.readFrame();
        Map<?, ?> startup = (Map<?, ?>) first[1];
        Map<?, ?> ti = (Map<?, ?>) startup.get("ti");
        String task = (String) ti.get("task_id");
        String line = "{\"event\": \"JavaPeer runs " + task + "\", \"level\": \"info\", "
                + "\"timestamp\": \"" + Instant.now() + "\", \"logger\": \"java_peer\"}\n";
        logs.getOutputStream().write(line.getBytes(StandardCharsets.UTF_8));
        logs.getOutputStream().flush();
        if (task.equals("read_var_conn")) {
            Map<String, Object> get = body("GetVariable");
            get.put("key", System.getProperty("peer.variable", "peer_var"));
            Map<?, ?> variable = (Map<?, ?>) peer.request(get)[1];
            Map<String, Object> value = new LinkedHashMap<>();
            value.put("var", variable.get("value"));
            value.put("runtime", "java");
            Map<String, Object> xcom = body("SetXCom");
            xcom.put("key", "return_value");
            xcom.put("value", value);
            xcom.put("dag_id", ti.get("dag_id"));
            xcom.put("run_id", ti.get("run_id"));
            xcom.put("task_id", task);
            xcom.put("map_index", ti.get("map_index"));
            peer.request(xcom);
        }
        Map<String, Object> end;
        if (task.equals("fail")) {
            end = body("TaskState");
            end.put("state", "failed");
        } else {
            end = body("SucceedTask");
            end.put("state", "success");
            end.put("task_outlets", new ArrayList<>());
            end.put("outlet_events", new ArrayList<>());
        }
        end.put("end_date", Instant.now());
        peer.request(end);
        logs.close();
        comm.close();
        System.exit(task.equals("fail") ? 1 : 0);
    }

    private static Socket connect(String hostPort) throws IOException {
        int colon = hostPort.lastIndexOf(':');
        return new Socket(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
    }

    private static Map<String, Object> body(String type) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", type);
        return m;
    }

    private Object[] request(Map<String, Object> body) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        pack(new DataOutputStream(buf), new Object[] {nextId++, body, null});
        byte[] payload = buf.toByteArray();
        DataOutputStream frame = new DataOutputStream(out);
        frame.writeInt(payload.length);
        frame.write(payload);
        frame.flush();
        Object[] reply = (Object[]) readFrame();
        if (reply.length > 2 && reply[2] != null) throw new IOException("error reply: " + reply[2]);
        return reply;
    }

    private Object readFrame() throws IOException {
        byte[] payload = new byte[in.readInt()];
        in.readFully(payload);
        return unpack(new DataInputStream(new ByteArrayInputStream(payload)));
    }

    // --- msgpack: what Airflow sends and this runtime writes ---------------------------------

    private static void pack(DataOutputStream o, Object v) throws IOException {
        if (v == null) o.writeByte(0xc0);
        else if (v instanceof Boolean) o.writeByte((Boolean) v ? 0xc3 : 0xc2);
        else if (v instanceof Integer || v instanceof Long) {
            long n = ((Number) v).longValue();
            if (n >= 0 && n < 128) o.writeByte((int) n);
            else if (n >= -32 && n < 0) o.writeByte((int) n);
            else { o.writeByte(0xd3); o.writeLong(n); }
        } else if (v instanceof Double) { o.writeByte(0xcb); o.writeDouble((Double) v); }
        else if (v instanceof String) {
            byte[] b = ((String) v).getBytes(StandardCharsets.UTF_8);
            if (b.length < 32) o.writeByte(0xa0 | b.length);
            else { o.writeByte(0xdb); o.writeInt(b.length); }
            o.write(b);
        } else if (v instanceof Instant) { // timestamp 96 (ext -1)
            Instant t = (Instant) v;
            o.writeByte(0xc7); o.writeByte(12); o.writeByte(0xff);
            o.writeInt(t.getNano()); o.writeLong(t.getEpochSecond());
        } else if (v instanceof Object[]) {
            Object[] a = (Object[]) v;
            o.writeByte(0xdd); o.writeInt(a.length);
            for (Object e : a) pack(o, e);
        } else if (v instanceof List) { pack(o, ((List<?>) v).toArray()); }
        else if (v instanceof Map) {
            Map<?, ?> m = (Map<?, ?>) v;
            if (m.size() < 16) o.writeByte(0x80 | m.size());
            else { o.writeByte(0xdf); o.writeInt(m.size()); }
            for (Map.Entry<?, ?> e : m.entrySet()) { pack(o, e.getKey()); pack(o, e.getValue()); }
        } else throw new IOException("cannot pack " + v.getClass());
    }

    private static Object unpack(DataInputStream i) throws IOException {
        int b = i.readUnsignedByte();
        if (b < 0x80) return (long) b;
        if (b >= 0xe0) return (long) (byte) b;
        if ((b & 0xf0) == 0x80) return map(i, b & 0x0f);
        if ((b & 0xf0) == 0x90) return array(i, b & 0x0f);
        if ((b & 0xe0) == 0xa0) return str(i, b & 0x1f);
        switch (b) {
            case 0xc0: return null;
            case 0xc2: return false;
            case 0xc3: return true;
            case 0xc4: return bytes(i, i.readUnsignedByte());
            case 0xc5: return bytes(i, i.readUnsignedShort());
            case 0xc6: return bytes(i, i.readInt());
            case 0xc7: { int n = i.readUnsignedByte(); i.readByte(); return bytes(i, n); }
            case 0xc8: { int n = i.readUnsignedShort(); i.readByte(); return bytes(i, n); }
            case 0xc9: { int n = i.readInt(); i.readByte(); return bytes(i, n); }
            case 0xca: return (double) i.readFloat();
            case 0xcb: return i.readDouble();
            case 0xcc: return (long) i.readUnsignedByte();
            case 0xcd: return (long) i.readUnsignedShort();
            case 0xce: return i.readInt() & 0xffffffffL;
            case 0xcf: case 0xd3: return i.readLong();
            case 0xd0: return (long) i.readByte();
            case 0xd1: return (long) i.readShort();
            case 0xd2: return (long) i.readInt();
            case 0xd4: i.readByte(); return bytes(i, 1);
            case 0xd5: i.readByte(); return bytes(i, 2);
            case 0xd6: i.readByte(); return bytes(i, 4);
            case 0xd7: i.readByte(); return bytes(i, 8);
            case 0xd8: i.readByte(); return bytes(i, 16);
            case 0xd9: return str(i, i.readUnsignedByte());
            case 0xda: return str(i, i.readUnsignedShort());
            case 0xdb: return str(i, i.readInt());
            case 0xdc: return array(i, i.readUnsignedShort());
            case 0xdd: return array(i, i.readInt());
            case 0xde: return map(i, i.readUnsignedShort());
            case 0xdf: return map(i, i.readInt());
            default: throw new IOException("msgpack byte " + b);
        }
    }

    private static byte[] bytes(DataInputStream i, int n) throws IOException {
        byte[] b = new byte[n];
        i.readFully(b);
        return b;
    }

    private static String str(DataInputStream i, int n) throws IOException {
        return new String(bytes(i, n), StandardCharsets.UTF_8);
    }

    private static Object[] array(DataInputStream i, int n) throws IOException {
        Object[] a = new Object[n];
        for (int k = 0; k < n; k++) a[k] = unpack(i);
        return a;
    }

    private static Map<Object, Object> map(DataInputStream i, int n) throws IOException {
        Map<Object, Object> m = new LinkedHashMap<>();
        for (int k = 0; k < n; k++) m.put(unpack(i), unpack(i));
        return m;
    }
}
