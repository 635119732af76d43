"""Write medrlvr's bundled demo questions: src/medrlvr/data/demo/{train,test}.jsonl.

Original USMLE-style questions written for medrlvr (not taken from any benchmark), so the CPU demo runs without a
data directory. Each entry: subject, stem, the correct option, three distractors, and an explanation (the SFT
target's reasoning). The correct option's letter is rotated A, B, C, D over the list so gold letters are balanced.
`train` is the candidate pool for filtering and selection; `test` is for evaluation only.

    python scripts/make_demo_data.py
"""

import json
from pathlib import Path

TRAIN = [
    (
        "pharmacology",
        "A 58-year-old man with atrial fibrillation is started on warfarin. Which laboratory test is used to adjust his dose?",
        "International normalized ratio (INR)",
        ["Activated partial thromboplastin time", "Platelet count", "Bleeding time"],
        "Warfarin lowers the vitamin K-dependent factors II, VII, IX and X; its effect is followed with the prothrombin time expressed as the INR.",
    ),
    (
        "pharmacology",
        "A hospitalized patient receiving an unfractionated heparin infusion develops major bleeding. Which drug reverses heparin?",
        "Protamine sulfate",
        ["Vitamin K", "Idarucizumab", "Flumazenil"],
        "Protamine binds heparin and neutralizes it; vitamin K reverses warfarin and idarucizumab reverses dabigatran.",
    ),
    (
        "pharmacology",
        "A 19-year-old woman is brought in 6 hours after ingesting a large number of acetaminophen tablets. Which antidote should be given?",
        "N-acetylcysteine",
        ["Naloxone", "Fomepizole", "Atropine"],
        "N-acetylcysteine replenishes glutathione, which detoxifies the toxic acetaminophen metabolite NAPQI.",
    ),
    (
        "pharmacology",
        "A farm worker has miosis, salivation, wheezing, bradycardia and diarrhea after spraying pesticides. Which drug should be given first?",
        "Atropine",
        ["Physostigmine", "Naloxone", "Flumazenil"],
        "Organophosphates inhibit acetylcholinesterase; atropine blocks the muscarinic effects, and pralidoxime regenerates the enzyme.",
    ),
    (
        "pharmacology",
        "A 60-year-old woman started on a new antihypertensive drug develops a persistent dry cough. Which drug is the most likely cause?",
        "Lisinopril",
        ["Losartan", "Amlodipine", "Hydrochlorothiazide"],
        "ACE inhibitors such as lisinopril block the breakdown of bradykinin, which causes a dry cough; angiotensin receptor blockers do not.",
    ),
    (
        "microbiology",
        "A 20-year-old college student has fever, neck stiffness and a petechial rash. Cerebrospinal fluid Gram stain shows gram-negative diplococci. Which organism is the most likely cause?",
        "Neisseria meningitidis",
        ["Streptococcus pneumoniae", "Listeria monocytogenes", "Haemophilus influenzae"],
        "Gram-negative diplococci with a petechial rash in a young adult indicate meningococcal meningitis.",
    ),
    (
        "microbiology",
        "A 30-year-old man has a single painless genital ulcer with a clean base and indurated edges. Which organism is the most likely cause?",
        "Treponema pallidum",
        ["Haemophilus ducreyi", "Herpes simplex virus type 2", "Neisseria gonorrhoeae"],
        "A painless indurated chancre is primary syphilis; chancroid (H. ducreyi) and herpes ulcers are painful.",
    ),
    (
        "microbiology",
        "A traveler returning from an area with a cholera outbreak has profuse painless rice-water diarrhea. Which organism is the most likely cause?",
        "Vibrio cholerae",
        ["Shigella dysenteriae", "Entamoeba histolytica", "Clostridioides difficile"],
        "Cholera toxin raises cAMP in enterocytes, causing massive secretory rice-water diarrhea without blood.",
    ),
    (
        "physiology",
        "Which hormone, released from the posterior pituitary, increases water reabsorption in the renal collecting duct?",
        "Antidiuretic hormone (vasopressin)",
        ["Aldosterone", "Atrial natriuretic peptide", "Cortisol"],
        "ADH inserts aquaporin-2 channels into collecting duct cells; aldosterone acts mainly on sodium and potassium.",
    ),
    (
        "physiology",
        "In a healthy kidney, in which nephron segment is most of the filtered glucose reabsorbed?",
        "Proximal convoluted tubule",
        ["Thick ascending limb of the loop of Henle", "Distal convoluted tubule", "Collecting duct"],
        "Sodium-glucose cotransporters in the proximal convoluted tubule reabsorb nearly all filtered glucose.",
    ),
    (
        "physiology",
        "Which cells of the alveolar wall produce pulmonary surfactant?",
        "Type II pneumocytes",
        ["Type I pneumocytes", "Alveolar macrophages", "Goblet cells"],
        "Type II pneumocytes secrete surfactant, which lowers surface tension; type I pneumocytes form the gas exchange surface.",
    ),
    (
        "anatomy",
        "A 25-year-old man fractures the midshaft of his humerus and cannot extend his wrist. Which nerve was injured?",
        "Radial nerve",
        ["Axillary nerve", "Ulnar nerve", "Median nerve"],
        "The radial nerve runs in the spiral groove of the humeral shaft and supplies the wrist extensors.",
    ),
    (
        "anatomy",
        "Which nerve supplies motor innervation to the diaphragm?",
        "Phrenic nerve",
        ["Vagus nerve", "Intercostal nerves", "Long thoracic nerve"],
        "The phrenic nerve arises from C3 to C5 and is the motor nerve of the diaphragm.",
    ),
    (
        "anatomy",
        "After an axillary lymph node dissection, a woman's scapula protrudes from her back when she pushes against a wall. Which nerve was injured?",
        "Long thoracic nerve",
        ["Thoracodorsal nerve", "Axillary nerve", "Suprascapular nerve"],
        "The long thoracic nerve supplies serratus anterior, which holds the scapula against the chest wall; its loss gives a winged scapula.",
    ),
    (
        "biochemistry",
        "A sailor on a long voyage without fresh food develops bleeding gums, poor wound healing and perifollicular hemorrhages. Deficiency of which vitamin is the cause?",
        "Vitamin C",
        ["Vitamin B1", "Vitamin D", "Vitamin K"],
        "Vitamin C is needed to hydroxylate proline and lysine in collagen; its deficiency is scurvy.",
    ),
    (
        "biochemistry",
        "A man with long-standing alcohol use disorder presents with confusion, ophthalmoplegia and ataxia. Deficiency of which vitamin is responsible?",
        "Thiamine (vitamin B1)",
        ["Niacin (vitamin B3)", "Cobalamin (vitamin B12)", "Pyridoxine (vitamin B6)"],
        "Wernicke encephalopathy is caused by thiamine deficiency; thiamine should be given before glucose.",
    ),
    (
        "genetics",
        "A child has recurrent lung infections, greasy stools and a high sweat chloride. Both parents are healthy. What is the mode of inheritance of this disease?",
        "Autosomal recessive",
        ["Autosomal dominant", "X-linked recessive", "Mitochondrial"],
        "Cystic fibrosis is caused by mutations in CFTR and is inherited as an autosomal recessive trait.",
    ),
    (
        "genetics",
        "A 5-year-old boy has proximal muscle weakness, enlarged calves and uses his hands to push himself up from the floor. Which gene is most likely mutated?",
        "Dystrophin",
        ["Fibrillin-1", "CFTR", "Huntingtin"],
        "Duchenne muscular dystrophy is an X-linked disorder caused by loss of dystrophin, with calf pseudohypertrophy and a Gowers sign.",
    ),
    (
        "pathology",
        "Which type of lung cancer is the most common in people who have never smoked?",
        "Adenocarcinoma",
        ["Small cell carcinoma", "Squamous cell carcinoma", "Large cell carcinoma"],
        "Adenocarcinoma is the most common lung cancer overall and in never-smokers; small cell and squamous cell are strongly tied to smoking.",
    ),
    (
        "pathology",
        "A lymph node biopsy from a young adult with painless cervical lymphadenopathy shows large binucleate cells with owl-eye nucleoli. What is the diagnosis?",
        "Hodgkin lymphoma",
        ["Burkitt lymphoma", "Multiple myeloma", "Chronic lymphocytic leukemia"],
        "Reed-Sternberg cells, large binucleate cells with prominent nucleoli, define Hodgkin lymphoma.",
    ),
    (
        "medicine",
        "A 62-year-old man with chest pain has ST elevation in leads II, III and aVF. Which wall of the heart is infarcted?",
        "Inferior wall",
        ["Anterior wall", "Lateral wall", "Septal wall"],
        "Leads II, III and aVF face the inferior wall, usually supplied by the right coronary artery.",
    ),
    (
        "medicine",
        "A 30-year-old woman has weight loss, heat intolerance, a diffusely enlarged non-tender thyroid and bulging eyes. What is the most likely diagnosis?",
        "Graves disease",
        ["Hashimoto thyroiditis", "Toxic multinodular goiter", "Subacute granulomatous thyroiditis"],
        "Thyroid-stimulating immunoglobulins cause hyperthyroidism with a diffuse goiter, and ophthalmopathy is specific to Graves disease.",
    ),
    (
        "medicine",
        "A 50-year-old man is newly diagnosed with type 2 diabetes and has normal kidney function. Which drug is the usual first-line therapy?",
        "Metformin",
        ["Insulin glargine", "Glipizide", "Pioglitazone"],
        "Metformin is first-line for type 2 diabetes: it lowers hepatic glucose output, does not cause weight gain and rarely causes hypoglycemia.",
    ),
    (
        "medicine",
        "A patient with chronic kidney disease has a serum potassium of 7.1 mEq/L and peaked T waves. Which treatment should be given first to protect the heart?",
        "Intravenous calcium gluconate",
        ["Insulin with glucose", "Sodium polystyrene sulfonate", "Furosemide"],
        "Calcium stabilizes the cardiac membrane within minutes; insulin and the other treatments lower potassium but act later.",
    ),
    (
        "pediatrics",
        "A 4-month-old infant in winter has rhinorrhea, cough, wheezing and crackles. Which virus is the most common cause of this illness?",
        "Respiratory syncytial virus",
        ["Adenovirus", "Influenza B virus", "Rotavirus"],
        "Bronchiolitis in infants is most often caused by respiratory syncytial virus.",
    ),
    (
        "pediatrics",
        "A 2-year-old has a barking cough and inspiratory stridor; a neck radiograph shows a steeple sign. Which organism is the most likely cause?",
        "Parainfluenza virus",
        ["Respiratory syncytial virus", "Haemophilus influenzae type b", "Streptococcus pyogenes"],
        "Croup (laryngotracheobronchitis) is usually caused by parainfluenza virus and narrows the subglottic trachea (steeple sign).",
    ),
    (
        "obstetrics",
        "A woman at 34 weeks of gestation has a blood pressure of 165/110 mm Hg, proteinuria and a severe headache. Which drug is given to prevent seizures?",
        "Magnesium sulfate",
        ["Phenytoin", "Diazepam", "Labetalol"],
        "Magnesium sulfate is the drug of choice to prevent eclamptic seizures in preeclampsia with severe features.",
    ),
    (
        "obstetrics",
        "A woman at 33 weeks of gestation has sudden painless bright red vaginal bleeding. The uterus is soft and non-tender. What is the most likely diagnosis?",
        "Placenta previa",
        ["Placental abruption", "Uterine rupture", "Preterm labor"],
        "Painless third-trimester bleeding suggests placenta previa; abruption is painful with a tender, firm uterus.",
    ),
    (
        "surgery",
        "A 21-year-old has pain that began around the umbilicus and moved to the right lower quadrant, with anorexia and a low fever. What is the most likely diagnosis?",
        "Acute appendicitis",
        ["Acute cholecystitis", "Sigmoid diverticulitis", "Acute pancreatitis"],
        "Periumbilical pain migrating to McBurney's point with anorexia and fever is the classic course of appendicitis.",
    ),
    (
        "surgery",
        "A 55-year-old woman who had a hysterectomy years ago presents with colicky pain, vomiting and distension from small bowel obstruction. What is the most likely cause?",
        "Adhesions",
        ["Hernia", "Malignancy", "Volvulus"],
        "Postoperative adhesions are the most common cause of small bowel obstruction in adults with previous abdominal surgery.",
    ),
    (
        "neurology",
        "A 68-year-old man has a resting tremor, rigidity and slow movements. Loss of neurons in which structure causes this disease?",
        "Substantia nigra pars compacta",
        ["Caudate nucleus", "Locus coeruleus", "Nucleus basalis of Meynert"],
        "Parkinson disease is caused by loss of dopaminergic neurons of the substantia nigra pars compacta.",
    ),
    (
        "neurology",
        "A 45-year-old woman has the sudden worst headache of her life and blood in the subarachnoid space on CT. What is the most common cause of this bleed when there is no trauma?",
        "Ruptured saccular (berry) aneurysm",
        ["Arteriovenous malformation", "Hypertensive arteriolosclerosis", "Tear of bridging veins"],
        "Most non-traumatic subarachnoid hemorrhages come from a ruptured saccular aneurysm of the circle of Willis.",
    ),
    (
        "hematology",
        "A 35-year-old woman with heavy menstrual periods has a microcytic anemia, low serum ferritin and high total iron-binding capacity. What is the most likely diagnosis?",
        "Iron deficiency anemia",
        ["Anemia of chronic disease", "Beta-thalassemia minor", "Vitamin B12 deficiency"],
        "Low ferritin with high TIBC means depleted iron stores; anemia of chronic disease has normal or high ferritin.",
    ),
    (
        "hematology",
        "In sickle cell disease, glutamic acid at position 6 of the beta-globin chain is replaced by which amino acid?",
        "Valine",
        ["Lysine", "Glycine", "Alanine"],
        "HbS carries valine in place of glutamic acid; HbC carries lysine.",
    ),
    (
        "immunology",
        "A hiker develops an itchy vesicular rash two days after touching poison ivy. Which type of hypersensitivity reaction is this?",
        "Type IV (delayed, T cell-mediated)",
        ["Type I (IgE-mediated)", "Type II (antibody against cell surface)", "Type III (immune complex)"],
        "Contact dermatitis is a delayed-type hypersensitivity mediated by sensitized T cells.",
    ),
    (
        "immunology",
        "Minutes after a bee sting, a man has hives, wheezing and a blood pressure of 70/40 mm Hg. What is the first treatment?",
        "Intramuscular epinephrine",
        ["Oral diphenhydramine", "Intravenous methylprednisolone", "Inhaled albuterol"],
        "Anaphylaxis is treated first with intramuscular epinephrine; antihistamines and steroids are adjuncts.",
    ),
    (
        "psychiatry",
        "A 32-year-old woman has had low mood, poor sleep and loss of interest for two months. Which drug is a usual first-line treatment?",
        "Sertraline",
        ["Lithium", "Haloperidol", "Diazepam"],
        "Selective serotonin reuptake inhibitors such as sertraline are first-line drugs for major depressive disorder.",
    ),
    (
        "pharmacology",
        "A patient starting treatment for tuberculosis is warned that his urine and tears will turn orange-red. Which drug causes this?",
        "Rifampin",
        ["Isoniazid", "Ethambutol", "Pyrazinamide"],
        "Rifampin colors body fluids orange-red; it also strongly induces cytochrome P450 enzymes.",
    ),
    (
        "medicine",
        "A 28-year-old woman has chronic diarrhea, bloating and iron deficiency. Which antibody test is the best initial screen for the most likely diagnosis?",
        "IgA anti-tissue transglutaminase",
        ["Anti-mitochondrial antibody", "Anti-smooth muscle antibody", "Perinuclear ANCA"],
        "Celiac disease is screened with IgA anti-tissue transglutaminase antibodies, with total IgA measured alongside.",
    ),
    (
        "medicine",
        "A 40-year-old woman has fatigue, darkened skin, low blood pressure, a low serum sodium and a high serum potassium. What is the most likely diagnosis?",
        "Primary adrenal insufficiency",
        ["Cushing syndrome", "Primary hyperaldosteronism", "Pheochromocytoma"],
        "Loss of cortisol and aldosterone gives hyponatremia, hyperkalemia and hypotension, and high ACTH darkens the skin (Addison disease).",
    ),
]

TEST = [
    (
        "pharmacology",
        "A 40-year-old woman is found drowsy with shallow breathing after taking many of her alprazolam tablets. Which drug reverses the effect of the benzodiazepine?",
        "Flumazenil",
        ["Naloxone", "Atropine", "N-acetylcysteine"],
        "Flumazenil is a competitive antagonist at the benzodiazepine site of the GABA-A receptor.",
    ),
    (
        "pharmacology",
        "A man is found unresponsive with pinpoint pupils and a respiratory rate of 6 per minute. Which drug should be given?",
        "Naloxone",
        ["Flumazenil", "Physostigmine", "Dantrolene"],
        "Miosis with respiratory depression suggests opioid overdose; naloxone is an opioid receptor antagonist.",
    ),
    (
        "pharmacology",
        "During surgery under general anesthesia with succinylcholine, a patient develops muscle rigidity, high fever and rising end-tidal CO2. Which drug is the treatment?",
        "Dantrolene",
        ["Bromocriptine", "Cyproheptadine", "Acetaminophen"],
        "Malignant hyperthermia is treated with dantrolene, which blocks calcium release from the sarcoplasmic reticulum.",
    ),
    (
        "pharmacology",
        "A patient who recently started atorvastatin reports diffuse muscle aches. Which laboratory value should be measured?",
        "Creatine kinase",
        ["Serum lipase", "Serum ferritin", "Hemoglobin A1c"],
        "Statins can cause myopathy and rarely rhabdomyolysis; creatine kinase measures muscle injury.",
    ),
    (
        "microbiology",
        "A week after a course of clindamycin, a 70-year-old woman develops profuse watery diarrhea and a high white cell count. Which organism is the most likely cause?",
        "Clostridioides difficile",
        ["Vibrio cholerae", "Salmonella Typhi", "Giardia lamblia"],
        "Antibiotics disrupt the gut flora and allow toxin-producing C. difficile to cause colitis.",
    ),
    (
        "microbiology",
        "A skin abscess grows gram-positive cocci in clusters that are catalase-positive and coagulase-positive. Which organism is it?",
        "Staphylococcus aureus",
        ["Staphylococcus epidermidis", "Streptococcus pyogenes", "Enterococcus faecalis"],
        "Coagulase distinguishes S. aureus from coagulase-negative staphylococci; streptococci are catalase-negative.",
    ),
    (
        "microbiology",
        "A man with alcohol use disorder has a cavitating upper lobe pneumonia and thick, bloody currant jelly sputum. Which organism is the most likely cause?",
        "Klebsiella pneumoniae",
        ["Pseudomonas aeruginosa", "Mycoplasma pneumoniae", "Legionella pneumophila"],
        "Klebsiella's thick capsule gives currant jelly sputum, classically after aspiration in people with alcohol use disorder.",
    ),
    (
        "physiology",
        "Which structure is the normal pacemaker of the heart?",
        "Sinoatrial node",
        ["Atrioventricular node", "Bundle of His", "Purkinje fibers"],
        "The sinoatrial node has the fastest intrinsic rate of depolarization and sets the heart rate.",
    ),
    (
        "physiology",
        "A low serum calcium stimulates secretion of which hormone, which raises calcium by acting on bone and kidney?",
        "Parathyroid hormone",
        ["Calcitonin", "Aldosterone", "Glucagon"],
        "Parathyroid hormone raises serum calcium by bone resorption, renal calcium reabsorption and activation of vitamin D.",
    ),
    (
        "physiology",
        "Which cells of the gastric mucosa secrete intrinsic factor?",
        "Parietal cells",
        ["Chief cells", "G cells", "Mucous neck cells"],
        "Parietal cells secrete both hydrochloric acid and intrinsic factor, which is needed to absorb vitamin B12.",
    ),
    (
        "anatomy",
        "After an anterior shoulder dislocation, a man has weak arm abduction and numbness over the lateral shoulder. Which nerve was injured?",
        "Axillary nerve",
        ["Radial nerve", "Musculocutaneous nerve", "Suprascapular nerve"],
        "The axillary nerve wraps around the surgical neck of the humerus and supplies the deltoid and the skin over it.",
    ),
    (
        "anatomy",
        "A soccer player fractures the neck of his fibula and now drags his toes because he cannot dorsiflex the foot. Which nerve was injured?",
        "Common fibular (peroneal) nerve",
        ["Tibial nerve", "Femoral nerve", "Obturator nerve"],
        "The common fibular nerve wraps around the fibular neck; its injury causes foot drop.",
    ),
    (
        "anatomy",
        "After a fracture of the medial epicondyle of the humerus, a patient cannot spread his fingers and has clawing of the fourth and fifth fingers. Which nerve was injured?",
        "Ulnar nerve",
        ["Median nerve", "Radial nerve", "Axillary nerve"],
        "The ulnar nerve passes behind the medial epicondyle and supplies the interossei and the medial lumbricals.",
    ),
    (
        "biochemistry",
        "A 65-year-old vegan has a macrocytic anemia, loss of vibration sense and an unsteady gait. Deficiency of which nutrient is the cause?",
        "Vitamin B12",
        ["Folate", "Iron", "Vitamin B6"],
        "Vitamin B12 deficiency causes megaloblastic anemia with subacute combined degeneration of the spinal cord; folate deficiency does not affect the nerves.",
    ),
    (
        "biochemistry",
        "A toddler who gets little sun has bowed legs, a widened wrist and a rachitic rosary. Deficiency of which vitamin is the cause?",
        "Vitamin D",
        ["Vitamin A", "Vitamin C", "Vitamin E"],
        "Vitamin D deficiency impairs bone mineralization, causing rickets in children.",
    ),
    (
        "genetics",
        "A tall young man has long fingers, lens dislocation and a dilated aortic root. Which gene is most likely mutated?",
        "Fibrillin-1",
        ["Type I collagen", "Dystrophin", "Elastin"],
        "Marfan syndrome is caused by mutations in fibrillin-1 (FBN1) and is autosomal dominant.",
    ),
    (
        "genetics",
        "What is the most common cause of Down syndrome?",
        "Meiotic nondisjunction",
        ["Robertsonian translocation", "Mosaicism", "Microdeletion of chromosome 22"],
        "About 95% of Down syndrome is trisomy 21 from maternal meiotic nondisjunction.",
    ),
    (
        "genetics",
        "A boy has bleeding into his joints and a prolonged partial thromboplastin time from factor VIII deficiency. What is the mode of inheritance?",
        "X-linked recessive",
        ["Autosomal recessive", "Autosomal dominant", "Mitochondrial"],
        "Hemophilia A (factor VIII deficiency) is X-linked recessive and mostly affects males.",
    ),
    (
        "pathology",
        "A 15-year-old has knee pain and a distal femur lesion with a sunburst pattern and Codman triangle on radiograph. What is the most likely diagnosis?",
        "Osteosarcoma",
        ["Ewing sarcoma", "Chondrosarcoma", "Giant cell tumor"],
        "Osteosarcoma is the most common primary malignant bone tumor of adolescents, typically around the knee with a sunburst pattern.",
    ),
    (
        "pathology",
        "A lung biopsy shows caseating granulomas containing acid-fast bacilli. What is the diagnosis?",
        "Tuberculosis",
        ["Sarcoidosis", "Silicosis", "Asbestosis"],
        "Caseating granulomas with acid-fast bacilli indicate Mycobacterium tuberculosis; sarcoidosis forms non-caseating granulomas.",
    ),
    (
        "medicine",
        "A 58-year-old man has crushing chest pain and ST elevation in leads V1 to V4. Which artery is most likely occluded?",
        "Left anterior descending artery",
        ["Right coronary artery", "Left circumflex artery", "Posterior descending artery"],
        "Leads V1 to V4 face the septum and anterior wall, supplied by the left anterior descending artery.",
    ),
    (
        "medicine",
        "A 65-year-old man has heart failure with an ejection fraction of 25%. Which drug has been shown to reduce mortality in this condition?",
        "Carvedilol",
        ["Digoxin", "Furosemide", "Verapamil"],
        "Beta-blockers such as carvedilol reduce mortality in heart failure with reduced ejection fraction; digoxin and loop diuretics relieve symptoms only.",
    ),
    (
        "medicine",
        "A 45-year-old woman has fatigue, weight gain, cold intolerance, a painless goiter and high anti-thyroid peroxidase antibodies. What is the most likely diagnosis?",
        "Hashimoto thyroiditis",
        ["Graves disease", "Subacute granulomatous thyroiditis", "Papillary thyroid carcinoma"],
        "Hashimoto thyroiditis is autoimmune hypothyroidism with anti-thyroid peroxidase antibodies.",
    ),
    (
        "medicine",
        "A 19-year-old with type 1 diabetes has vomiting, deep rapid breathing, a glucose of 520 mg/dL and an anion gap acidosis. What is the first step in treatment?",
        "Intravenous isotonic saline",
        ["Subcutaneous insulin glargine", "Oral metformin", "Intravenous sodium bicarbonate"],
        "Diabetic ketoacidosis causes severe dehydration; treatment starts with intravenous fluids, followed by intravenous insulin and potassium.",
    ),
    (
        "pediatrics",
        "A 3-year-old has had fever for 6 days, bilateral conjunctivitis, a strawberry tongue, a swollen cervical lymph node and peeling fingers. Which complication is the most serious?",
        "Coronary artery aneurysm",
        ["Renal failure", "Aortic stenosis", "Hepatic failure"],
        "Kawasaki disease is a vasculitis that can cause coronary artery aneurysms; intravenous immunoglobulin and aspirin lower the risk.",
    ),
    (
        "pediatrics",
        "A newborn with Down syndrome has bilious vomiting on the first day of life, and an abdominal radiograph shows a double bubble sign. What is the most likely diagnosis?",
        "Duodenal atresia",
        ["Hypertrophic pyloric stenosis", "Hirschsprung disease", "Meconium ileus"],
        "Duodenal atresia gives bilious vomiting soon after birth with a double bubble and is associated with Down syndrome.",
    ),
    (
        "obstetrics",
        "Right after delivery a woman bleeds heavily and her uterus is soft and boggy. Which drug is the first-line treatment?",
        "Oxytocin",
        ["Magnesium sulfate", "Terbutaline", "Nifedipine"],
        "Uterine atony is the most common cause of postpartum hemorrhage; oxytocin makes the uterus contract.",
    ),
    (
        "obstetrics",
        "Folic acid supplements taken before conception and early in pregnancy lower the risk of which birth defect?",
        "Neural tube defects",
        ["Congenital heart block", "Down syndrome", "Pyloric stenosis"],
        "Folic acid lowers the risk of neural tube defects such as spina bifida and anencephaly.",
    ),
    (
        "surgery",
        "A 45-year-old woman has right upper quadrant pain after a fatty meal, fever, and pain that stops her breathing in when the right upper quadrant is pressed. What is the most likely diagnosis?",
        "Acute cholecystitis",
        ["Acute appendicitis", "Perforated peptic ulcer", "Acute pancreatitis"],
        "Right upper quadrant pain with fever and a positive Murphy sign points to acute cholecystitis, usually from a stone in the cystic duct.",
    ),
    (
        "surgery",
        "A 65-year-old man with hypertension has sudden tearing chest pain radiating to the back and a blood pressure that differs between his arms. What is the most likely diagnosis?",
        "Aortic dissection",
        ["Myocardial infarction", "Pulmonary embolism", "Tension pneumothorax"],
        "Tearing pain radiating to the back with unequal arm pressures suggests aortic dissection.",
    ),
    (
        "neurology",
        "A man wakes up unable to close his right eye, raise his right eyebrow or smile on the right side. Which cranial nerve is affected?",
        "Facial nerve (VII)",
        ["Trigeminal nerve (V)", "Oculomotor nerve (III)", "Hypoglossal nerve (XII)"],
        "Weakness of the whole half of the face, forehead included, is a peripheral facial nerve palsy (Bell palsy).",
    ),
    (
        "neurology",
        "What is the most common cause of dementia in older adults?",
        "Alzheimer disease",
        ["Vascular dementia", "Dementia with Lewy bodies", "Frontotemporal dementia"],
        "Alzheimer disease accounts for most dementia in older adults.",
    ),
    (
        "hematology",
        "A patient taking an oral anticoagulant needs emergency surgery, and the drug is reversed with idarucizumab. Which anticoagulant was he taking?",
        "Dabigatran",
        ["Rivaroxaban", "Warfarin", "Enoxaparin"],
        "Idarucizumab is an antibody fragment that binds dabigatran, a direct thrombin inhibitor.",
    ),
    (
        "immunology",
        "Which antibody class, bound to mast cells, mediates type I (immediate) hypersensitivity?",
        "IgE",
        ["IgG", "IgM", "IgA"],
        "Allergen cross-linking IgE on mast cells releases histamine and other mediators within minutes.",
    ),
    (
        "immunology",
        "A young man has had two episodes of meningococcal meningitis. Deficiency of which part of the immune system is most likely?",
        "Terminal complement components (C5 to C9)",
        ["C1 esterase inhibitor", "Myeloperoxidase", "Bruton tyrosine kinase"],
        "The membrane attack complex (C5 to C9) is needed to kill Neisseria; its deficiency gives recurrent Neisseria infections.",
    ),
    (
        "medicine",
        "A 35-year-old who has never smoked has emphysema at the lung bases and elevated liver enzymes. What is the most likely underlying condition?",
        "Alpha-1 antitrypsin deficiency",
        ["Cystic fibrosis", "Primary ciliary dyskinesia", "Asthma"],
        "Alpha-1 antitrypsin deficiency leaves elastase unchecked in the lungs (panacinar emphysema) and the misfolded protein injures the liver.",
    ),
    (
        "psychiatry",
        "A patient with bipolar disorder needs regular blood levels of her mood stabilizer and develops polyuria from nephrogenic diabetes insipidus and hypothyroidism. Which drug is she taking?",
        "Lithium",
        ["Valproate", "Fluoxetine", "Quetiapine"],
        "Lithium has a narrow therapeutic range and can cause nephrogenic diabetes insipidus and hypothyroidism.",
    ),
    (
        "microbiology",
        "A man has a painless chancre and a positive treponemal test. What is the treatment of choice?",
        "Benzathine penicillin G",
        ["Ciprofloxacin", "Metronidazole", "Fluconazole"],
        "Primary syphilis is treated with a single intramuscular dose of benzathine penicillin G.",
    ),
    (
        "medicine",
        "A health worker's hepatitis B tests show a positive anti-HBs antibody and negative HBsAg and anti-HBc. What does this pattern mean?",
        "Immunity from vaccination",
        ["Acute infection", "Chronic infection", "Window period of infection"],
        "Anti-HBs alone, without anti-HBc, means immunity from the vaccine, which contains only surface antigen.",
    ),
    (
        "pediatrics",
        "A 4-year-old boy has periorbital edema, heavy proteinuria and low serum albumin, with normal blood pressure. What is the most likely cause?",
        "Minimal change disease",
        ["Membranous nephropathy", "IgA nephropathy", "Post-streptococcal glomerulonephritis"],
        "Minimal change disease is the most common cause of nephrotic syndrome in children and responds to steroids.",
    ),
]


def rows(items, split):
    out = []
    for i, (subject, question, correct, distractors, explanation) in enumerate(items):
        assert len(distractors) == 3 and correct not in distractors, question
        gold = i % 4  # rotate the correct option through A, B, C, D
        options = list(distractors)
        options.insert(gold, correct)
        out.append(
            {
                "id": f"demo-{split}-{i:03d}",
                "question": question,
                "options": dict(zip("ABCD", options)),
                "answer": "ABCD"[gold],
                "subject": subject,
                "source": "demo",
                "split": split,
                "explanation": explanation,
            }
        )
    return out


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent / "src" / "medrlvr" / "data" / "demo"
    root.mkdir(parents=True, exist_ok=True)
    for split, items in (("train", TRAIN), ("test", TEST)):
        with open(root / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in rows(items, split):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{root / f'{split}.jsonl'}: {len(items)} questions")
