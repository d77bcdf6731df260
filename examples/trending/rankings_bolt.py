"""Merges the counters' [word, count] reports and, at every tick, emits the overall top
`trending.top` as [rank, word, count] tuples, rank 1 first (Storm's TotalRankingsBolt). A
word no counter reported since the last tick is out of the running."""
from pystorm import Bolt


class RankingsBolt(Bolt):
    def initialize(self, conf, context):
        self.top = int(conf.get("trending.top", 5))
        self.counts = {}

    def process(self, tup):
        word, count = tup.values
        self.counts[word] = count

    def process_tick(self, tup):
        ranking = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        for rank, (word, count) in enumerate(ranking[: self.top], start=1):
            self.emit([rank, word, count], anchors=[])
        self.counts = {}


if __name__ == "__main__":
    RankingsBolt().run()
