// Deletes the topics whose names start with a pattern (a Java regex matched
// at the start of the name): the deployment tests' own topics, after them.
// Run with the broker's own kafka-clients, as a single source file:
//   java -cp '.local/jars/kafka/lib/*' tests/deploy/kafka/DeleteTopics.java \
//     127.0.0.1:9092 'deploy-hybrid-1a2b3c\.' ...
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;

public class DeleteTopics {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: DeleteTopics BOOTSTRAP PATTERN...");
            System.exit(2);
        }
        List<Pattern> patterns = new ArrayList<>();
        for (int i = 1; i < args.length; i++)
            patterns.add(Pattern.compile(args[i]));
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("request.timeout.ms", "60000");
        p.put("default.api.timeout.ms", "120000");
        try (Admin admin = Admin.create(p)) {
            List<String> doomed = new ArrayList<>();
            for (String name : admin.listTopics().names().get())
                for (Pattern pat : patterns)
                    if (pat.matcher(name).lookingAt()) {
                        doomed.add(name);
                        break;
                    }
            if (!doomed.isEmpty())
                admin.deleteTopics(doomed).all().get();
            System.out.println("deleted " + doomed.size() + " topics");
        }
    }
}
