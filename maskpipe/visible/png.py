"""Rendered samples as one PNG: a grid of tiles, one per sample (Pillow).

The same blocks and colours as the HTML page: styled text wrapped to the tile, pictures side by
side, tables as aligned rows. Long texts are cut after :data:`MAX_LINES` lines per block.
"""
from __future__ import annotations

import numpy as np

from maskpipe.visible import pictures
from maskpipe.visible.blocks import LEGEND, Note, Picture, Rendered, Seg, Table, Text

TILE_W = 760
PAD = 12
LINE = 18
MAX_LINES = 14
BG = {"pii": (255, 213, 74), "mask": (229, 57, 53), "random": (142, 68, 173), "kept": (67, 160, 71),
      "loss": (208, 236, 247), "sentinel": (30, 91, 200), "masked": (255, 205, 210)}
FG = {"mask": (255, 255, 255), "random": (255, 255, 255), "kept": (255, 255, 255), "sentinel": (255, 255, 255),
      "masked": (139, 0, 0), "special": (150, 150, 165), "dim": (120, 125, 140), "pii": (58, 42, 0)}
INK = (29, 35, 48)


class _Canvas:
    """Draws onto a growing list of rows; :meth:`image` gives the tile."""

    def __init__(self, width: int):
        from PIL import Image, ImageDraw, ImageFont

        self.Image, self.ImageDraw = Image, ImageDraw
        self.font = ImageFont.load_default(size=13)
        self.small = ImageFont.load_default(size=11)
        self.w = width
        self.img = Image.new("RGB", (width, 4000), "white")
        self.d = ImageDraw.Draw(self.img)
        self.y = PAD

    def _room(self, h: int) -> None:
        if self.y + h + PAD > self.img.height:
            grown = self.Image.new("RGB", (self.w, max(self.img.height * 2, self.y + h + PAD)), "white")
            grown.paste(self.img, (0, 0))
            self.img, self.d = grown, self.ImageDraw.Draw(grown)

    def line(self, text: str, color=INK, small: bool = False) -> None:
        self._room(LINE)
        self.d.text((PAD, self.y), text, fill=color, font=self.small if small else self.font)
        self.y += LINE

    def segs(self, segs, max_lines: int = MAX_LINES) -> None:
        x, lines = PAD, 1
        self._room(LINE)
        for s in segs:
            words = (s.text + (f" {s.tip}" if s.tip else "")).replace("\n", " ").split(" ")
            for k, word in enumerate(words):
                piece = word + (" " if k < len(words) - 1 and s.style == "plain" else "")
                if s.style != "plain" and k < len(words) - 1:
                    piece = word + " "
                wpx = self.font.getlength(piece)
                if x + wpx > self.w - PAD and x > PAD:
                    lines += 1
                    if lines > max_lines:
                        self.d.text((PAD, self.y + LINE), "...", fill=FG["dim"], font=self.font)
                        self.y += 2 * LINE
                        return
                    x, self.y = PAD, self.y + LINE
                    self._room(LINE)
                if s.style in BG and piece.strip():
                    self.d.rectangle((x - 1, self.y + 1, x + self.font.getlength(piece.rstrip()) + 1, self.y + LINE - 2),
                                     fill=BG[s.style])
                self.d.text((x, self.y + 1), piece, fill=FG.get(s.style, INK), font=self.font)
                x += wpx
        self.y += LINE + 4

    def pictures(self, images) -> None:
        x, tallest = PAD, 0
        fitted = []
        for caption, img in images:
            img = pictures.fit(img, (self.w - PAD * (len(images) + 1)) // max(1, len(images)), 260)
            fitted.append((caption, img))
        for caption, img in fitted:
            h, w = img.shape[:2]
            self._room(h + LINE)
            self.img.paste(self.Image.fromarray(np.ascontiguousarray(img)), (x, self.y))
            self.d.text((x, self.y + h + 2), caption, fill=FG["dim"], font=self.small)
            x += w + PAD
            tallest = max(tallest, h)
        self.y += tallest + LINE + 4

    def image(self):
        return self.img.crop((0, 0, self.w, self.y + PAD))


def tile(r: Rendered, width: int = TILE_W):
    c = _Canvas(width)
    c.line(r.heading)
    for b in r.blocks:
        if isinstance(b, Note):
            c.segs([Seg(b.text, b.style)])
        elif isinstance(b, Text):
            c.line(b.title + (f" - {b.summary}" if b.summary else ""), FG["dim"], small=True)
            c.segs(b.segs)
        elif isinstance(b, Picture):
            c.line(b.title + (f" - {b.summary}" if b.summary else ""), FG["dim"], small=True)
            c.pictures(b.images)
        elif isinstance(b, Table):
            c.line(b.title + (f" - {b.summary}" if b.summary else ""), FG["dim"], small=True)
            width = [max([len(h)] + [len(x.text) for x in (row[j] for row in b.rows)]) for j, h in enumerate(b.header)]
            width = [min(w, 36) for w in width]
            c.segs([Seg("  ".join(h.ljust(w) for h, w in zip(b.header, width)), "dim")], 1)
            for row in b.rows[:MAX_LINES]:
                cells = []
                for x, w in zip(row, width):
                    t = x.text if len(x.text) <= w else x.text[: w - 3] + "..."
                    cells += [Seg(t, x.style), Seg(" " * (w - len(t) + 2))]
                c.segs(cells, 1)
    return c.image()


def grid(samples: list[Rendered], path: str, columns: int = 2, title: str = "") -> str:
    """Write the samples' tiles as one PNG grid at ``path``; returns ``path``."""
    Image = pictures.pil()
    from PIL import ImageDraw, ImageFont

    tiles = [tile(r) for r in samples]
    columns = max(1, min(columns, len(tiles)))
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    head = 2 * LINE + PAD * 2
    H = head + sum(max(t.height for t in row) + PAD for row in rows)
    W = columns * (TILE_W + PAD) + PAD
    out = Image.new("RGB", (W, H), (236, 239, 244))
    d = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=15)
    d.text((PAD, PAD), title, fill=INK, font=font)
    x = PAD
    for st, name in LEGEND.items():
        small = ImageFont.load_default(size=12)
        wpx = small.getlength(name)
        d.rectangle((x, PAD + LINE + 4, x + wpx + 6, PAD + 2 * LINE + 4), fill=BG[st])
        d.text((x + 3, PAD + LINE + 5), name, fill=FG.get(st, INK), font=small)
        x += wpx + 16
    y = head
    for row in rows:
        for j, t in enumerate(row):
            out.paste(t, (PAD + j * (TILE_W + PAD), y))
        y += max(t.height for t in row) + PAD
    out.save(path, format="PNG")
    return path
