"""Knowledge base of HCC resistance axes: ligand-receptor pairs, mechanisms, therapies, citations."""
