"""What the command-line tests share: reading the parser's messages."""


def plain_text(output: str) -> str:
    """The words of the parser's boxed error message, without the box."""
    return " ".join(output.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())
