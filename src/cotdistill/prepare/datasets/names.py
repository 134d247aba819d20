"""The coin-flip task's given names: one list that the generator draws from and the
step checker (steps/) reads questions with, in a module light enough for both."""

# Short given names, chosen so that no name is a prefix of the others' sentences.
NAMES = (
    "Ana Bo Cy Dan Eva Fay Gus Hal Ivy Jo Kim Lee Mia Ned Oli Pam Raj Sam Tom Uma Val Wes "
    "Xia Yan Zoe Abe Bea Cal Dee Eli Flo Gil Hana Ian Jay Kai Liv Max Nia Otto Pia Quin Rex "
    "Sue Ted Una Vic Wyn Ada Ben Cleo Dev Emi Finn Gia Hugo Iris Jude Kara Leo Mara Nico "
    "Omar Paz Rosa Seth Tara Ugo Vera Will Yara Zack"
).split()
