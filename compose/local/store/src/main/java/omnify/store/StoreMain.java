package omnify.store;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.ServerVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A MongoDB-wire-protocol server for local development: mongo-java-server
 * with its H2 MVStore file backend, so data survives restarts.
 *
 * Settings, each from "--name value" (or "--name=value") arguments, else the
 * system property "omnify.store.name", else the default:
 *   host          127.0.0.1
 *   port          27017
 *   file          ./omnify-store.mv  (H2 MVStore file; parent dirs created)
 *   version       5.0                (reported server version: 3.6, 4.0, 5.0)
 *   ttl-interval  60                 (seconds between TTL sweeps; 0 = off)
 *
 * Beyond plain mongo-java-server it answers "hello" (drivers send it instead
 * of isMaster when a stable server API is requested), deletes expired
 * documents of TTL indexes (expireAfterSeconds), like mongod's TTL monitor,
 * and commits the MVStore before it answers a write, so an acknowledged
 * write is in the file (what a journaled write promises): on its own the
 * MVStore commits once a second, and the fault scenarios once found the
 * last second of acknowledged writes missing after a stop under load.
 *
 * Each addition is something mongod itself does (hello, the TTL monitor
 * every 60 s, journaled acknowledged writes), so no code can come to depend
 * on a behaviour MongoDB 7 lacks through this launcher. What mongo-java-server
 * lacks next to MongoDB 7 (non-unique indexes are accepted but ignored, so
 * such queries scan; no sessions, transactions, change streams, collation,
 * partial indexes, explain, collMod) is listed, measured, in the README's
 * "Local infrastructure" section; tests/bench/store compares this store with
 * FerretDB on the access patterns of the domains.
 *
 * Prints one "ready" line to stdout once listening; SIGTERM/SIGINT close the
 * listener and the MVStore cleanly via a shutdown hook.
 */
public final class StoreMain {

    private StoreMain() {
    }

    /** H2Backend plus the two additions described above. */
    static final class Backend extends H2Backend {

        Backend(String file) {
            super(file);
        }

        /** Commands that change data: committed before they are answered. */
        private static final Set<String> WRITES = Set.of("insert", "update", "delete",
                "findandmodify", "create", "createindexes", "drop", "dropdatabase",
                "dropindexes", "renamecollection");

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            if (command.equalsIgnoreCase("hello")) {
                Document reply = super.handleCommand(channel, database, "isMaster", query);
                reply.put("isWritablePrimary", Boolean.TRUE);
                reply.remove("ismaster");
                return reply;
            }
            Document reply = super.handleCommand(channel, database, command, query);
            if (WRITES.contains(command.toLowerCase(Locale.ROOT))) {
                commitThrough(writeSeq.incrementAndGet());
            }
            return reply;
        }

        /** Writes finished so far, and the last of them known committed. */
        private final AtomicLong writeSeq = new AtomicLong();
        private long committedSeq; // guarded by commitLock
        private final Object commitLock = new Object();

        /**
         * Group commit: returns once write `seq` is committed. One commit at a
         * time; a writer that waited for the lock usually finds its write
         * committed by the commit it waited for.
         */
        private void commitThrough(long seq) {
            synchronized (commitLock) {
                if (committedSeq >= seq) {
                    return;
                }
                long upTo = writeSeq.get(); // every write up to here has finished
                commit();
                committedSeq = upTo;
            }
        }

        /**
         * One pass of the TTL monitor: for every index with
         * expireAfterSeconds on a single field, delete the documents whose
         * field holds a date (or an array with a date) older than the cutoff.
         * Returns the number of documents deleted.
         */
        int sweepExpired() {
            int deleted = 0;
            Instant now = Instant.now(getClock());
            for (String dbName : new ArrayList<>(listDatabaseNames())) {
                MongoDatabase db = resolveDatabase(dbName);
                MongoCollection<?> indexes = db.resolveCollection("system.indexes", false);
                if (indexes == null) {
                    continue;
                }
                List<Document> ttlIndexes = new ArrayList<>();
                for (Document index : indexes.queryAll()) {
                    if (index.get("expireAfterSeconds") instanceof Number) {
                        ttlIndexes.add(index);
                    }
                }
                for (Document index : ttlIndexes) {
                    Object key = index.get("key");
                    Object ns = index.get("ns");
                    if (!(key instanceof Document) || ((Document) key).size() != 1 || !(ns instanceof String)) {
                        continue; // mongod ignores TTL on compound indexes too
                    }
                    String field = ((Document) key).keySet().iterator().next();
                    String collName = ((String) ns).substring(dbName.length() + 1);
                    MongoCollection<?> coll = db.resolveCollection(collName, false);
                    if (coll == null) {
                        continue;
                    }
                    long seconds = ((Number) index.get("expireAfterSeconds")).longValue();
                    Instant cutoff = now.minusSeconds(seconds);
                    // $type "date" keeps non-date values (which mongod's
                    // monitor never expires) out of the comparison.
                    Document selector = new Document(field,
                            new Document("$lt", cutoff).append("$type", "date"));
                    deleted += coll.deleteDocuments(selector, 0);
                }
            }
            return deleted;
        }
    }

    private static String setting(String[] args, String name, String fallback) {
        String flag = "--" + name;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals(flag) && i + 1 < args.length) {
                return args[i + 1];
            }
            if (args[i].startsWith(flag + "=")) {
                return args[i].substring(flag.length() + 1);
            }
        }
        return System.getProperty("omnify.store." + name, fallback);
    }

    private static ServerVersion parseVersion(String v) {
        switch (v) {
            case "3.6":
                return ServerVersion.MONGO_3_6;
            case "4.0":
                return ServerVersion.MONGO_4_0;
            case "5.0":
                return ServerVersion.MONGO_5_0;
            default:
                throw new IllegalArgumentException("unsupported version " + v + " (3.6, 4.0 or 5.0)");
        }
    }

    public static void main(String[] args) throws Exception {
        String host = setting(args, "host", "127.0.0.1");
        int port = Integer.parseInt(setting(args, "port", "27017"));
        Path file = Path.of(setting(args, "file", "omnify-store.mv")).toAbsolutePath();
        ServerVersion version = parseVersion(setting(args, "version", "5.0"));
        long ttlInterval = Long.parseLong(setting(args, "ttl-interval", "60"));

        if (file.getParent() != null) {
            Files.createDirectories(file.getParent());
        }

        Backend backend = new Backend(file.toString());
        backend.version(version);
        MongoServer server = new MongoServer(backend);

        ScheduledExecutorService ttl = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "omnify-store-ttl");
            t.setDaemon(true);
            return t;
        });

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("omnify-store: shutting down");
            ttl.shutdownNow();
            try {
                ttl.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            // shutdown() stops listening, then closes the backend, which
            // flushes and closes the MVStore file.
            server.shutdown();
            System.out.println("omnify-store: stopped");
            System.out.flush();
            stopped.countDown();
        }, "omnify-store-shutdown"));

        try {
            server.bind(host, port);
        } catch (RuntimeException e) {
            System.err.println("omnify-store: cannot listen on " + host + ":" + port + ": " + e);
            backend.close();
            System.exit(1);
        }

        if (ttlInterval > 0) {
            ttl.scheduleWithFixedDelay(() -> {
                try {
                    int n = backend.sweepExpired();
                    if (n > 0) {
                        System.out.println("omnify-store: TTL monitor deleted " + n + " expired document(s)");
                    }
                } catch (RuntimeException e) {
                    // Keep the monitor alive; a failed pass is retried next time.
                    System.err.println("omnify-store: TTL sweep failed: " + e);
                }
            }, ttlInterval, ttlInterval, TimeUnit.SECONDS);
        }

        System.out.println("omnify-store ready mongodb://" + host + ":" + port
                + " file=" + file + " version=" + version + " ttl-interval=" + ttlInterval + "s");
        System.out.flush();

        // Netty's threads keep the JVM alive anyway; wait explicitly so the
        // main thread's lifetime matches the server's.
        stopped.await();
    }
}
