"""`vitcli report`: one offline page (HTML, or Markdown and its pictures) per study of runs and sweeps.

    study.py        the runs and sweeps under the paths given, read as their commands read them
    sections.py     the page from a study (build; report_options.py: Options); a module per section:
                    run_facts, results_section, sweep_section, vit_section, standing_section
    ranking.py      what the sections share: the baseline, the order, intervals, seeds, --json's numbers
    document.py     the page as data; plots.py its own charts
    html_page.py    one self-contained HTML file; markdown_page.py: report.md and its pictures
    pages.py        make_report, write_html, write_markdown: from paths to files
    references.py   published and measured figures a run is placed against (references.toml, with sources)
    stats.py        the numbers behind the page: intervals, seed bands, the cost front, what mattered

May import: vitcli.lab's other modules and everything below them.
"""
