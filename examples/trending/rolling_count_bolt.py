"""Counts [word] tuples over the last `trending.window.secs` seconds, in one-second slots
advanced by tick tuples; at every tick emits [word, count] for its `trending.top` words with
the highest counts (Storm's RollingCountBolt and intermediate rankings in one)."""
from collections import Counter, deque

from pystorm import Bolt


class RollingCountBolt(Bolt):
    def initialize(self, conf, context):
        self.top = int(conf.get("trending.top", 5))
        self.slots = deque([Counter()], maxlen=int(conf.get("trending.window.secs", 5)))

    def process(self, tup):
        self.slots[-1][tup.values[0]] += 1

    def process_tick(self, tup):
        totals = Counter()
        for slot in self.slots:
            totals.update(slot)
        for word, count in totals.most_common(self.top):
            self.emit([word, count], anchors=[])
        self.slots.append(Counter())


if __name__ == "__main__":
    RollingCountBolt().run()
