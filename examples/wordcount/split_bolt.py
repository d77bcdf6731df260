"""Splits each sentence into lowercase words: [word], anchored to the sentence and acked
(pystorm's defaults)."""
import re

from pystorm import Bolt

WORD = re.compile(r"[a-z']+")


class SplitBolt(Bolt):
    def process(self, tup):
        for word in WORD.findall(tup.values.sentence.lower()):
            self.emit([word])


if __name__ == "__main__":
    SplitBolt().run()
